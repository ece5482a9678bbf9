#!/usr/bin/env node
/**
 * Generates docs/machine.md from the job machine's definition: a Mermaid state diagram with every
 * transition (event and guard), the transitions that apply in any state, and each state's description.
 *
 *   node dist/src/tools/machine-doc.js --write   rewrite the file
 *   node dist/src/tools/machine-doc.js --check   exit 1 when the file is stale
 *
 * Run it from the repository root.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AnyStateNode } from 'xstate';
import { jobMachine } from '../../machines/job.machine.js';

export const MACHINE_DOC_PATH = path.resolve('docs/machine.md');

interface TransitionLike {
  eventType: string;
  target?: readonly AnyStateNode[] | undefined;
  guard?: unknown;
}

/** A short label for an event: `xstate.done.actor.probeApi` → `done: probeApi`. */
export function eventLabel(eventType: string): string {
  if (eventType === '') return 'always';
  const actor = /^xstate\.(done|error)\.actor\.(.+)$/.exec(eventType);
  if (actor) return `${actor[1]}: ${actor[2]}`;
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after ${after[1]}`;
  return eventType;
}

function guardLabel(guard: unknown): string {
  if (!guard) return '';
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && guard !== null && 'type' in guard) return String((guard as { type: unknown }).type);
  if (typeof guard === 'function') {
    // xstate's higher-order guards are functions carrying their parts and their check function.
    const parts = guard as { check?: { name?: string }; guards?: unknown[]; stateValue?: unknown; name?: string };
    const kind = parts.check?.name;
    if (kind === 'checkNot' && Array.isArray(parts.guards)) return `not ${guardLabel(parts.guards[0])}`;
    if (kind === 'checkOr' && Array.isArray(parts.guards)) return parts.guards.map(guardLabel).join(' or ');
    if (Array.isArray(parts.guards)) return parts.guards.map(guardLabel).join(' and ');
    if (parts.stateValue !== undefined) return `in ${String(parts.stateValue).replace(/^#job\./, '')}`;
    return parts.name ?? 'guard';
  }
  return 'guard';
}

function mermaidId(node: AnyStateNode): string {
  return node.path.join('_') || 'job';
}

function allTransitions(node: AnyStateNode): TransitionLike[] {
  return [...[...node.transitions.values()].flat(), ...(node.always ?? [])] as TransitionLike[];
}

function renderState(node: AnyStateNode, indent: string, lines: string[]): void {
  const children = Object.values(node.states) as AnyStateNode[];
  if (children.length > 0) {
    lines.push(`${indent}state ${mermaidId(node)} {`);
    const initial = node.config.initial;
    if (typeof initial === 'string')
      lines.push(`${indent}  [*] --> ${mermaidId(node.states[initial] as AnyStateNode)}`);
    for (const child of children) renderState(child, `${indent}  `, lines);
    lines.push(`${indent}}`);
  } else {
    lines.push(`${indent}state "${node.key}" as ${mermaidId(node)}`);
  }
}

function renderEdges(node: AnyStateNode, lines: string[]): void {
  if (node !== jobMachine.root) {
    for (const transition of allTransitions(node)) {
      for (const target of transition.target ?? []) {
        const guard = guardLabel(transition.guard);
        lines.push(
          `  ${mermaidId(node)} --> ${mermaidId(target)} : ${eventLabel(transition.eventType)}${guard ? ` [${guard}]` : ''}`,
        );
      }
    }
    if (node.type === 'final') lines.push(`  ${mermaidId(node)} --> [*]`);
  }
  for (const child of Object.values(node.states) as AnyStateNode[]) renderEdges(child, lines);
}

/** The Markdown page. */
export function renderMachineDoc(): string {
  const root = jobMachine.root;
  const lines: string[] = [
    'stateDiagram-v2',
    `  [*] --> ${mermaidId(root.states[String(root.config.initial)] as AnyStateNode)}`,
  ];
  for (const child of Object.values(root.states) as AnyStateNode[]) renderState(child, '  ', lines);
  renderEdges(root, lines);

  const anywhere = allTransitions(root).map((t) => {
    const guard = guardLabel(t.guard);
    const targets = (t.target ?? []).map((n) => n.key).join(', ');
    return `- \`${eventLabel(t.eventType)}\`${guard ? ` when ${guard}` : ''} → \`${targets}\``;
  });
  const states = (Object.values(root.states) as AnyStateNode[]).map(
    (node) => `| \`${node.key}\` | ${node.description ?? ''} |`,
  );
  return [
    '# The job machine',
    '',
    '<!-- Generated from machines/job.machine.ts by `npm run docs:machine`; a test fails when this file is stale. -->',
    '',
    'One machine runs per job (`machines/job.machine.ts`); the job runner (`src/job/runner.ts`) starts it. Its',
    'I/O is done by the actors `src/job/actors.ts` provides; its waits are named delays read from the job',
    'settings, so a SimulatedClock drives it in tests. Event labels: `done: x` / `error: x` is actor `x`',
    'finishing or failing, `after d` is the named delay `d`, `always` is taken as soon as the state is entered.',
    'Before its first job the worker waits for A1111 with `machines/readiness.machine.ts`, which follows the',
    'same rules as `waitingForApi` (`machines/waiting-for-api.ts`).',
    '',
    '```mermaid',
    ...lines,
    '```',
    '',
    '## In any state',
    '',
    ...anywhere,
    '',
    '## States',
    '',
    '| State | What happens there |',
    '|---|---|',
    ...states,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const expected = renderMachineDoc();
  if (process.argv.includes('--write')) {
    await writeFile(MACHINE_DOC_PATH, expected);
    process.stdout.write(`wrote ${MACHINE_DOC_PATH}\n`);
    return;
  }
  const current = await readFile(MACHINE_DOC_PATH, 'utf8').catch(() => '');
  if (current !== expected) {
    process.stderr.write(`${MACHINE_DOC_PATH} is stale: run npm run docs:machine\n`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
