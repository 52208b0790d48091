#!/usr/bin/env node
// The CLI is TypeScript: Node runs it through tsx's loader, so a clone needs
// no build step; Deno runs TypeScript itself (`deno task kandinsky ...`).
if (typeof Deno === 'undefined') (await import('tsx/esm/api')).register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
