#!/usr/bin/env node
// `pnpm reseq <command>` at the repository root runs this (the root depends on @reseq/cli, so
// pnpm links it as a binary and runs it without printing a banner on stdout: `--json` output
// stays parseable). It only loads the built CLI; run `pnpm build` first.
import '../dist/main.js';
