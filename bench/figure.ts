// Benchmark figures: the shape every benchmark returns, plus the percentile and progress helpers they share.

export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly note?: string;
}

/** The p-th percentile (0–100) by nearest rank, so the figure is always a value that was actually measured. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new Error('percentile of no samples: measure at least one');
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** Rounds for printing; results.json keeps the same rounded value so the two never disagree. */
export function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Progress goes to stderr, so stdout carries only the figures. */
export function progress(line: string): void {
  process.stderr.write(`  ${line}\n`);
}
