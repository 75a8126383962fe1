#!/usr/bin/env bash
# hack/kind-e2e.sh: vmbuild end to end on a kind cluster, for those who HAVE Docker.
#
# NOT EXECUTED HERE. This project's machines have no Docker engine (and reach no container registry), so kind
# cannot run on them, and this script was therefore never run as part of the project's own checks. Read it
# before you run it. Without Docker, `npm run demo` runs the same kind of build on a local control plane.
#
# Steps: a kind cluster; Tekton Pipelines and KubeVirt at pinned releases (KubeVirt with useEmulation, since
# kind nodes rarely expose /dev/kvm); the controller image, built and loaded into kind; deploy/release.yaml;
# the examples, plus a git server and a plain-HTTP registry inside the cluster; the example Pipeline, run like
# deploy/examples/pipelinerun.yaml but pointed at that git server and registry, and waited for; then the
# pushed index is checked for both platforms and the build VM for being scratched.
#
# Needs docker, kind, kubectl, curl and internet access. Emulated VMs are slow: expect 15 to 45 minutes.
# CLUSTER (default vmbuild-e2e) names the cluster; it is kept afterwards: kind delete cluster --name "$CLUSTER".
set -euo pipefail

readonly TEKTON_VERSION=v1.9.0 # an LTS release of tektoncd/pipeline
readonly KUBEVIRT_VERSION=v1.8.2 # serves pool.kubevirt.io/v1beta1
readonly IMAGE=ghcr.io/vmbuild/vmbuild-controller:v0.1.0 # the name deploy/controller.yaml uses
readonly NS=multi-arch-build # the examples' namespace
readonly CLUSTER=${CLUSTER:-vmbuild-e2e}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'kind-e2e: %s\n' "$*" >&2
  exit 1
}

for tool in docker kind kubectl curl; do
  command -v "$tool" >/dev/null || fail "$tool is required"
done

step "kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 2m
kubectl config use-context "kind-$CLUSTER" >/dev/null

step "Tekton Pipelines $TEKTON_VERSION"
kubectl apply -f "https://github.com/tektoncd/pipeline/releases/download/$TEKTON_VERSION/release.yaml"
kubectl -n tekton-pipelines wait deployment --all --for=condition=Available --timeout=5m

step "KubeVirt $KUBEVIRT_VERSION, software emulation"
kubectl apply -f "https://github.com/kubevirt/kubevirt/releases/download/$KUBEVIRT_VERSION/kubevirt-operator.yaml"
kubectl apply -f "https://github.com/kubevirt/kubevirt/releases/download/$KUBEVIRT_VERSION/kubevirt-cr.yaml"
kubectl -n kubevirt patch kubevirt kubevirt --type=merge \
  -p '{"spec":{"configuration":{"developerConfiguration":{"useEmulation":true}}}}'
kubectl -n kubevirt wait kubevirt/kubevirt --for=condition=Available --timeout=15m

step "controller image $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "deploy/release.yaml"
kubectl apply -f deploy/release.yaml
kubectl wait crd/vmbuilds.vmbuild.dev --for=condition=Established --timeout=1m
kubectl -n vmbuild-system rollout status deployment/vmbuild-controller --timeout=5m

step "examples in $NS, and a git server and a registry for them"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f deploy/examples/secrets.yaml -f deploy/examples/buildsys-pool.yaml \
  -f deploy/networkpolicy-build-vms.yaml -f deploy/examples/pipeline.yaml -f deploy/examples/vmbuild.yaml
kubectl -n "$NS" apply -f - <<'EOF'
# A registry without TLS or login, for this test only: the run passes tlsVerify "false".
apiVersion: apps/v1
kind: Deployment
metadata: { name: e2e-registry }
spec:
  selector: { matchLabels: { app: e2e-registry } }
  template:
    metadata: { labels: { app: e2e-registry } }
    spec:
      containers:
        - name: registry
          image: docker.io/library/registry:2.8.3
          ports: [{ containerPort: 5000 }]
          readinessProbe: { httpGet: { path: /v2/, port: 5000 } }
---
apiVersion: v1
kind: Service
metadata: { name: registry }
spec:
  selector: { app: e2e-registry }
  ports: [{ port: 5000, targetPort: 5000 }]
---
# One repository over git://, whose Dockerfile prints the architecture each platform's RUN step sees.
apiVersion: apps/v1
kind: Deployment
metadata: { name: e2e-git }
spec:
  selector: { matchLabels: { app: e2e-git } }
  template:
    metadata: { labels: { app: e2e-git } }
    spec:
      containers:
        - name: git
          image: docker.io/library/alpine:3.21
          command: [sh, -euc]
          args:
            - |
              apk add --no-cache git git-daemon
              mkdir -p /srv/app && cd /srv/app
              printf 'FROM docker.io/library/busybox:1.36\nRUN uname -m\n' > Dockerfile
              git init -q -b main . && git add Dockerfile
              git -c user.name=e2e -c user.email=e2e@example.com commit -qm e2e
              exec git daemon --reuseaddr --export-all --base-path=/srv --port=9418 /srv
          ports: [{ containerPort: 9418 }]
          readinessProbe: { tcpSocket: { port: 9418 } }
---
apiVersion: v1
kind: Service
metadata: { name: git }
spec:
  selector: { app: e2e-git }
  ports: [{ port: 9418, targetPort: 9418 }]
EOF
kubectl -n "$NS" wait deployment/e2e-registry deployment/e2e-git --for=condition=Available --timeout=5m

step "the example Pipeline, against the in-cluster git server and registry"
run=$(kubectl create -o name -f - <<EOF
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  generateName: multi-arch-image-build-e2e-
  namespace: $NS
spec:
  pipelineRef:
    name: multi-arch-image-build
  params:
    - { name: gitUrl, value: "git://git.$NS.svc.cluster.local/app" }
    - { name: gitRevision, value: main }
    - { name: image, value: "registry.$NS.svc.cluster.local:5000/e2e/app:latest" }
    - { name: tlsVerify, value: "false" }
    - { name: readyTimeout, value: 30m }
  timeouts:
    pipeline: 1h0m0s
EOF
)
echo "$run"

# The custom task's condition is where vmbuild reports progress: print it whenever it changes.
deadline=$((SECONDS + 3900))
status="" last=""
while [[ "$status" != True && "$status" != False ]]; do
  ((SECONDS < deadline)) || fail "$run did not finish in time"
  sleep 10
  status=$(kubectl -n "$NS" get "$run" -o jsonpath='{.status.conditions[?(@.type=="Succeeded")].status}')
  now=$(kubectl -n "$NS" get customruns -l "tekton.dev/pipelineRun=${run#*/}" \
    -o jsonpath='{range .items[*]}{.status.conditions[0].reason}: {.status.conditions[0].message}{end}')
  if [[ -n "$now" && "$now" != "$last" ]]; then
    printf '    %s  %s\n' "$(date +%H:%M:%S)" "$now"
    last=$now
  fi
done
if [[ "$status" != True ]]; then
  kubectl -n "$NS" describe "$run" >&2
  fail "$run did not succeed"
fi
kubectl -n "$NS" get "$run" -o jsonpath='{range .status.results[*]}    {.name}={.value}{"\n"}{end}'

step "the pushed index has both platforms, and the build VM is scratched"
kubectl -n "$NS" port-forward service/registry 15000:5000 >/dev/null &
forward=$!
trap 'kill "$forward" 2>/dev/null || true' EXIT
sleep 3
index=$(curl -fsS \
  -H 'Accept: application/vnd.oci.image.index.v1+json' \
  -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
  http://127.0.0.1:15000/v2/e2e/app/manifests/latest)
for arch in amd64 arm64; do
  grep -Eq "\"architecture\": *\"$arch\"" <<<"$index" || fail "the pushed index has no $arch image: $index"
done
vmis=$(kubectl -n "$NS" get virtualmachineinstances -o name)
[[ -z "$vmis" ]] || fail "VM instances still running after the run: $vmis"
step "OK: $run built linux/amd64 and linux/arm64 on a leased VM, pushed them, and scratched the VM"
