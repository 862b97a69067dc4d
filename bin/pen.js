#!/usr/bin/env node
// Entry point for `npx pen`: runs the TypeScript CLI through tsx's loader, so there is no stale build to run.
import process from 'node:process';
import { register } from 'tsx/esm/api';

register();
const { guardStandardStreams, exitWhenIdle } = await import('../src/cli/interrupt.ts');
// A reader of stdout that goes away (`pen status --watch | head -n 2`) ends the command as Ctrl-C does, with no trace.
guardStandardStreams();
const { main } = await import('../src/cli/pen.ts');
// Exits with main's code as soon as nothing is left to do, and at the latest 2 s later, so that no command hangs.
exitWhenIdle(await main(process.argv.slice(2)));
