// The part of vitest's API the kernel tests use, for running those same test files inside a page: the browser
// bundle (page-bundle.ts) maps `import ... from 'vitest'` here. `expect` is vitest's own (@vitest/expect on
// chai, which is browser code), so every matcher means what it means in Node; describe/it and the hooks are a
// small collector that the page runs one case at a time when the Node side asks (kernel-page.ts).
//
// Anything else vitest offers (it.each, it.skip, vi, ...) throws when a test file uses it, so a kernel test
// that grows beyond this subset fails loudly here instead of being skipped.
import { type ExpectStatic, getState, JestAsymmetricMatchers, JestChaiExpect, JestExtend, setState } from '@vitest/expect';
import * as chai from 'chai';

chai.use(JestExtend);
chai.use(JestChaiExpect);
chai.use(JestAsymmetricMatchers);

export const expect = ((value: unknown, message?: string) => {
  const { assertionCalls } = getState(expect);
  setState({ assertionCalls: assertionCalls + 1 }, expect);
  return chai.expect(value, message);
}) as unknown as ExpectStatic;
Object.assign(expect, chai.expect);
setState({ assertionCalls: 0, isExpectingAssertions: false, expectedAssertionsNumber: null }, expect);

type Fn = () => unknown;
interface Scope {
  name: string;
  file: string;
  parent: Scope | null;
  beforeAll: Fn[];
  afterAll: Fn[];
  /** Cases of this scope and of scopes inside it, in order: afterAll runs after the last of them. */
  cases: Case[];
  started: boolean;
  /** What a beforeAll hook threw: every case of the scope fails with it. */
  setupError: string | null;
}
export interface Case {
  id: number;
  file: string;
  name: string;
  fn: Fn;
  scopes: Scope[];
}

const cases: Case[] = [];
let current: Scope | null = null;

function scopeOf(kind: string): Scope {
  if (!current) throw new Error(`${kind} outside a test file: the page runner imports test files through collectFile()`);
  return current;
}

/** Imports one test file (a dynamic import of the bundle), recording its describe/it calls and hooks. */
export async function collectFile(file: string, load: () => Promise<unknown>): Promise<void> {
  current = { name: '', file, parent: null, beforeAll: [], afterAll: [], cases: [], started: false, setupError: null };
  try {
    await load();
  } finally {
    current = null;
  }
}

export function describe(name: string, fn: () => void): void {
  const parent = scopeOf('describe');
  current = { name, file: parent.file, parent, beforeAll: [], afterAll: [], cases: [], started: false, setupError: null };
  try {
    fn();
  } finally {
    current = parent;
  }
}

/** it(name, fn), it(name, fn, timeout) or it(name, options, fn); the page has no timeouts of its own (the Node side has). */
export function it(name: string, a: Fn | object, b?: Fn | number): void {
  const fn = typeof a === 'function' ? (a as Fn) : b;
  if (typeof fn !== 'function') throw new Error(`it("${name}"): no test function`);
  const scope = scopeOf('it');
  const scopes: Scope[] = [];
  for (let s: Scope | null = scope; s; s = s.parent) scopes.unshift(s);
  const c: Case = {
    id: cases.length,
    file: scope.file,
    name: [...scopes.map((s) => s.name).filter(Boolean), name].join(' > '),
    fn,
    scopes,
  };
  cases.push(c);
  for (const s of scopes) s.cases.push(c);
}
export const test = it;

export function beforeAll(fn: Fn): void {
  scopeOf('beforeAll').beforeAll.push(fn);
}
export function afterAll(fn: Fn): void {
  scopeOf('afterAll').afterAll.push(fn);
}

const unsupported = (name: string) => () => {
  throw new Error(`${name} is not supported by the page's test runner (test/browser/vitest-shim.ts); add it there`);
};
for (const [obj, name] of [
  [describe, 'describe'],
  [it, 'it'],
] as const) {
  for (const k of ['each', 'skip', 'only', 'todo', 'concurrent', 'sequential', 'skipIf', 'runIf', 'for'])
    Object.assign(obj, { [k]: unsupported(`${name}.${k}`) });
}
export const beforeEach = unsupported('beforeEach');
export const afterEach = unsupported('afterEach');
export const vi = new Proxy({}, { get: (_, k) => unsupported(`vi.${String(k)}`)() });

/** The collected cases, in file order. */
export function collectedCases(): readonly Case[] {
  return cases;
}

/**
 * Runs one case: its scopes' beforeAll hooks first if they have not run yet, then the case, then the afterAll
 * hooks of every scope whose last case this was. Returns the error message, or null when it passed.
 */
export async function runCase(id: number): Promise<string | null> {
  const c = cases[id];
  if (!c) throw new Error(`no case ${id}`);
  let failure: string | null = null;
  const message = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  const fail = (e: unknown) => {
    failure ??= message(e);
  };
  try {
    for (const s of c.scopes) {
      if (!s.started) {
        s.started = true;
        try {
          for (const h of s.beforeAll) await h();
        } catch (e) {
          s.setupError = message(e);
        }
      }
      if (s.setupError) throw new Error(`beforeAll of ${s.name || s.file} failed: ${s.setupError}`);
    }
    await c.fn();
  } catch (e) {
    fail(e);
  }
  for (const s of [...c.scopes].reverse()) {
    if (s.cases[s.cases.length - 1] !== c) continue;
    for (const h of s.afterAll) {
      try {
        await h();
      } catch (e) {
        fail(e);
      }
    }
  }
  return failure;
}
