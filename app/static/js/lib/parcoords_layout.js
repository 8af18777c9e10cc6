/* Where the words of parallel coordinates go, measured for the chart's width: each axis'
 * tick labels fit between it and the axis to its left (broken into lines where they would
 * not), the first axis' labels get the left margin they need, and the axis titles are
 * wrapped to the room between axes and, where a word is still too wide for it (phones),
 * set on two staggered rows. Nothing overlaps and nothing is cut at the chart's edges. */

const FAMILY = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
let context;

/** The width in px of one line of text in this font size (as Plotly will draw it). */
function widthOf(text, size) {
  context ||= document.createElement("canvas").getContext("2d");
  context.font = `${size}px ${FAMILY}`;
  return Math.ceil(context.measureText(text).width) + 2;
}

/** Lines of at most `most` px, broken between words; a "+" stays with the word before it
 * ("crop + flip +" / "blur + colour"). A single word wider than `most` keeps a line. */
function lines(text, size, most) {
  const out = [];
  for (const word of String(text).split(/\s+(?!\+)/)) {
    const joined = out.length ? `${out[out.length - 1]} ${word}` : word;
    if (out.length && widthOf(joined, size) <= most) out[out.length - 1] = joined;
    else out.push(word);
  }
  return out;
}

const widest = (texts, size) => Math.max(0, ...texts.map((t) => widthOf(t, size)));

/**
 * width: the chart's width in px; titles: one per axis; ticks: per axis, [{y (0..1 on the
 * axis), text}]; narrow: a phone's smaller type and margins, and no colour bar to leave
 * room for. Returns the layout's margin, x range (axis j at x = j) and annotations (the
 * titles above the plot, each tick label left of its axis); all texts plain, not HTML.
 */
export function parcoordsLayout(width, titles, ticks, narrow) {
  const n = titles.length;
  const tickSize = narrow ? 10 : 11;
  const titleSize = narrow ? 11 : 12;
  const right = narrow ? 12 : 90; // the colour bar's room on a wide screen
  const gapOf = (left) => (n > 1 ? (width - left - right) / (n - 1) : width - left - right);
  // tick labels may take the room between two axes, less a little air either side
  const roomFor = (left) => Math.max(40, gapOf(left) - 10);
  let left = narrow ? 40 : 60;
  let broken = ticks.map((axis) => axis.map((t) => lines(t.text, tickSize, roomFor(left))));
  left = Math.max(left, widest(broken[0].flat(), tickSize) + 8);
  broken = ticks.map((axis) => axis.map((t) => lines(t.text, tickSize, roomFor(left))));
  const gap = gapOf(left);

  // titles: wrapped to the room between two axes; on two rows where a word is wider
  const lineHeight = Math.ceil(titleSize * 1.3);
  let wrapped = titles.map((t) => lines(t, titleSize, gap - 8));
  const stagger = n > 2 && wrapped.some((ls) => widest(ls, titleSize) > gap - 8);
  if (stagger) wrapped = titles.map((t) => lines(t, titleSize, 2 * gap - 8));
  const rowHeight = (row) => lineHeight * Math.max(0, ...wrapped.filter((_, j) => j % 2 === row).map((ls) => ls.length));
  const above = [4, 4 + rowHeight(0) + 4]; // px from the plot's top to each row's bottom
  const xOf = (j) => (n > 1 ? left + j * gap : (left + width - right) / 2);
  const annotations = wrapped.map((ls, j) => {
    const half = widest(ls, titleSize) / 2;
    const x = xOf(j);
    // kept inside the chart: the first and last titles may be wider than their margin
    const xshift = Math.max(2 - (x - half), Math.min(0, width - 2 - (x + half)));
    const yshift = above[stagger ? j % 2 : 0];
    return { x: j, y: 1, yref: "paper", yanchor: "bottom", xshift, yshift, text: ls.join("<br>"), showarrow: false, font: { size: titleSize } };
  });
  const top = (stagger ? above[1] + rowHeight(1) : above[0] + rowHeight(0)) + 6;
  ticks.forEach((axis, j) =>
    axis.forEach((t, k) =>
      annotations.push({
        x: j,
        y: t.y,
        text: broken[j][k].join("<br>"),
        showarrow: false,
        xanchor: "right",
        xshift: -4,
        font: { size: tickSize, color: "#3a4457" },
        bgcolor: "rgba(255,255,255,0.75)",
      }),
    ),
  );
  return { margin: { l: left, r: right, t: top, b: 16 }, range: n > 1 ? [0, n - 1] : [-1, 1], annotations };
}
