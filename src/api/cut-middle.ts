/**
 * `text` with its middle cut when it is longer than twice `keep` characters (and a little): the start says what a
 * message is about, its end what went wrong (and where the log is). Never half a surrogate pair at the cut.
 */
export function cutMiddle(text: string, keep: number): string {
  if (text.length <= 2 * keep + 64) return text;
  let head = keep;
  let tail = text.length - keep;
  if (/[\uD800-\uDBFF]/.test(text.charAt(head - 1))) head -= 1;
  if (/[\uDC00-\uDFFF]/.test(text.charAt(tail))) tail += 1;
  return `${text.slice(0, head)} ... [${tail - head} characters cut] ... ${text.slice(tail)}`;
}
