#!/usr/bin/env node
// Entry point for `npx pen`: runs the TypeScript CLI through tsx's loader, so there is no stale build to run.
import process from 'node:process';
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/pen.ts');
process.exitCode = await main(process.argv.slice(2));
