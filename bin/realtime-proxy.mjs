#!/usr/bin/env node
// Runs the TypeScript sources through tsx so that custom guardrail modules in policies/ may be .ts too.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
