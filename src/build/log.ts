import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { dirname } from "node:path";

// The full log of one build attempt, written to a file as it happens, with its last lines kept for the
// failure message.

const TAIL_LINES = 20;

export class BuildLog {
  private readonly out: WriteStream;
  private readonly recent: string[] = [];

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.out = createWriteStream(path, { flags: "a" });
  }

  line(text: string): void {
    for (const l of text.replace(/\n+$/, "").split("\n")) {
      this.out.write(`${l}\n`);
      this.recent.push(l);
      if (this.recent.length > TAIL_LINES) this.recent.shift();
    }
  }

  tail(n: number): string {
    return this.recent.slice(-n).join("\n");
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.out.end(resolve));
  }
}
