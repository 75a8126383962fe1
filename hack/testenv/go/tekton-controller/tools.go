//go:build tools

// Pins what Tekton's cmd/controller imports so `go mod tidy` keeps its dependencies in go.sum;
// the binary itself is built with `go build github.com/tektoncd/pipeline/cmd/controller`.
package tools

import (
	_ "github.com/tektoncd/pipeline/pkg/apis/pipeline"
	_ "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	_ "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun"
	_ "github.com/tektoncd/pipeline/pkg/reconciler/resolutionrequest"
	_ "github.com/tektoncd/pipeline/pkg/reconciler/taskrun"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/client-go/rest"
	_ "k8s.io/utils/clock"
	_ "knative.dev/pkg/client/injection/kube/informers/factory/filtered"
	_ "knative.dev/pkg/controller"
	_ "knative.dev/pkg/injection"
	_ "knative.dev/pkg/injection/sharedmain"
	_ "knative.dev/pkg/signals"
)
