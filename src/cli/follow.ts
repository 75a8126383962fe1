// Following a stored log: each read of the VMBuildLog returns its whole text, and only what is new is printed.
// The stored text keeps its head and its tail once it outgrows its bound, so a later read may not extend the
// earlier one: then the new text is re-anchored on the last lines already printed, or, if they are gone from it,
// a marker says that lines were skipped. Pure.

/** How many of the last printed lines re-anchor a text that no longer extends the one printed. */
export const ANCHOR_LINES = 5;

export const SKIPPED_MARKER = "--- kubectl vmbuild: lines between here were cut from the stored log ---\n";

/** What to print after having printed `before` (the previous read's text), given the new read's `after`. */
export function newOutput(before: string, after: string): string {
  if (after.startsWith(before)) return after.slice(before.length);
  const common = lineStart(after, commonPrefixLength(before, after));
  const anchor = lastLines(before.slice(common), ANCHOR_LINES);
  if (anchor !== "") {
    const at = lastLineAlignedIndex(after, anchor, common);
    if (at >= 0) return after.slice(at + anchor.length);
  }
  return SKIPPED_MARKER + after.slice(common);
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** The start of the line `index` lies in (the text before it ends with a newline). */
function lineStart(text: string, index: number): number {
  return text.lastIndexOf("\n", index - 1) + 1;
}

/** The last `n` whole lines of `text` (each with its newline); "" if it holds no whole line. */
function lastLines(text: string, n: number): string {
  const end = text.lastIndexOf("\n") + 1;
  if (end === 0) return "";
  let newline = end - 1;
  for (let i = 0; i < n; i++) {
    const prev = text.lastIndexOf("\n", newline - 1);
    if (prev < 0) return text.slice(0, end);
    newline = prev;
  }
  return text.slice(newline + 1, end);
}

/** The last index at or after `from` where `needle` starts a line of `text`, or -1. */
function lastLineAlignedIndex(text: string, needle: string, from: number): number {
  let at = text.lastIndexOf(needle);
  while (at >= from) {
    if (at === 0 || text[at - 1] === "\n") return at;
    at = text.lastIndexOf(needle, at - 1);
  }
  return -1;
}
