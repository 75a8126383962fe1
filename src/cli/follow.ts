// Following a stored log: each read of the VMBuildLog returns its whole text, and only what is new is printed.
// The stored text keeps its head and its tail once it outgrows its bound (a marker line between them), so a later
// read may not extend the earlier one. Then the lines printed last are looked for in the new text: found, what
// follows them is new; gone (the tail moved past them), a marker says lines were skipped. Pure.

/** Lines printed last that, found again in order, show where the new text carries on. */
export const ANCHOR_LINES = 5;

export const SKIPPED_MARKER = "--- kubectl vmbuild: lines between here were cut from the stored log ---\n";

/** What to print after having printed `before` (the previous read's text), given the new read's `after`. */
export function newOutput(before: string, after: string): string {
  if (after.startsWith(before)) return after.slice(before.length);
  const common = lineStart(after, commonPrefixLength(before, after));
  const printed = wholeLines(before.slice(common));
  const fresh = wholeLines(after.slice(common));
  const last = printed.length - 1;
  for (let i = fresh.length - 1; last >= 0 && i >= 0; i--) {
    let matched = 0;
    while (matched < ANCHOR_LINES && i - matched >= 0 && last - matched >= 0 && fresh[i - matched] === printed[last - matched]) matched++;
    if (matched === 0) continue;
    const start = i - matched + 1;
    // Enough lines agree, or all that was printed does, or the match reaches back to the stored text's own marker
    // line (or to where the texts part): the new text carries on from there.
    if (matched >= ANCHOR_LINES || matched === printed.length || start <= 1) {
      const offset = common + fresh.slice(0, i + 1).reduce((n, line) => n + line.length, 0);
      return after.slice(offset);
    }
  }
  return SKIPPED_MARKER + after.slice(common);
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** The start of the line `index` lies in. */
function lineStart(text: string, index: number): number {
  return text.lastIndexOf("\n", index - 1) + 1;
}

/** The whole lines of `text`, each with its newline; a last line without one is left out. */
function wholeLines(text: string): string[] {
  const end = text.lastIndexOf("\n") + 1;
  return end === 0 ? [] : text.slice(0, end).split(/(?<=\n)/);
}
