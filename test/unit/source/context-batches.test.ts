import { describe, expect, it } from "vitest";
import { batched } from "../../../src/source/context-tar.js";

async function* pieces(...sizes: number[]): AsyncGenerator<Buffer> {
  let n = 0;
  for (const size of sizes) yield Buffer.alloc(size, n++ % 256);
}

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of source) out.push(chunk);
  return out;
}

const KiB = 1024;

describe("batched (the context tar's pieces)", () => {
  it("joins headers, padding and small files into pieces of at least 64 KiB, the rest at the end", async () => {
    const sizes = [512, 100, 412, ...Array<number>(200).fill(512), 30];
    const input = Buffer.concat(await collect(pieces(...sizes)));
    const out = await collect(batched(pieces(...sizes)));
    expect(out.map((b) => b.length)).toEqual([64 * KiB, input.length - 64 * KiB]);
    expect(Buffer.concat(out).equals(input)).toBe(true);
  });

  it("passes a piece of 64 KiB or more through uncopied when nothing waits before it", async () => {
    const big = Buffer.alloc(64 * KiB, 7);
    async function* source(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(512, 1);
      yield Buffer.alloc(64 * KiB, 2);
      yield big;
    }
    const out = await collect(batched(source()));
    expect(out.map((b) => b.length)).toEqual([64 * KiB + 512, 64 * KiB]);
    expect(out[1]).toBe(big);
  });

  it("yields nothing for nothing, and a lone small piece as it is", async () => {
    expect(await collect(batched(pieces()))).toEqual([]);
    expect((await collect(batched(pieces(10)))).map((b) => b.length)).toEqual([10]);
  });

  it("passes the source's error on", async () => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(10);
      throw new Error("context too large");
    }
    await expect(collect(batched(failing()))).rejects.toThrow("context too large");
  });
});
