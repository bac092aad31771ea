// A small SVG line chart of the training (and evaluation) loss per optimizer step.

/** The SVG text for losses per step (NaN steps skipped), with eval points as circles. */
export function lossCurveSvg(train: readonly { step: number; loss: number }[], evals: readonly { step: number; loss: number }[] = []): string {
  const W = 640, H = 360, pad = 48;
  const pts = [...train, ...evals].filter((p) => Number.isFinite(p.loss));
  const esc = (n: number): string => (Math.round(n * 100) / 100).toString();
  if (pts.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><text x="${pad}" y="${H / 2}">no loss recorded</text></svg>\n`;
  const x0 = Math.min(...pts.map((p) => p.step)), x1 = Math.max(...pts.map((p) => p.step), x0 + 1);
  const y0 = Math.min(...pts.map((p) => p.loss)), y1 = Math.max(...pts.map((p) => p.loss), y0 + 1e-6);
  const sx = (s: number): number => pad + ((s - x0) / (x1 - x0)) * (W - 2 * pad);
  const sy = (l: number): number => H - pad - ((l - y0) / (y1 - y0)) * (H - 2 * pad);
  const line = train.filter((p) => Number.isFinite(p.loss)).map((p) => `${esc(sx(p.step))},${esc(sy(p.loss))}`).join(" ");
  const dots = evals.filter((p) => Number.isFinite(p.loss)).map((p) => `<circle cx="${esc(sx(p.step))}" cy="${esc(sy(p.loss))}" r="3" fill="#d62728"/>`).join("");
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="black"/><line x1="${pad}" y1="${pad}" x2="${pad}" y2="${H - pad}" stroke="black"/>`,
    `<text x="${pad}" y="${pad - 8}">loss ${y1.toFixed(4)}</text><text x="${pad}" y="${H - pad + 16}">${y0.toFixed(4)} · step ${x0}</text><text x="${W - pad}" y="${H - pad + 16}" text-anchor="end">step ${x1}</text>`,
    `<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${line}"/>${dots}`,
    `</svg>`,
    "",
  ].join("\n");
}
