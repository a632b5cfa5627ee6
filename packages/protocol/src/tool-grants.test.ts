import { describe, expect, test } from 'vitest';
import { isToolAllowed, toolCallNames, toolsAllowedAt } from './tool-grants.js';

const NOTES = 'https://notes.example/mcp';
const detail = (location: string, actions: string[]) => ({ type: 'mcp_tool', locations: [location], actions });

describe('toolsAllowedAt', () => {
  test('no details, or none for this resource: no tool restriction', () => {
    expect(toolsAllowedAt(undefined, NOTES)).toBeNull();
    expect(toolsAllowedAt(null, NOTES)).toBeNull();
    expect(toolsAllowedAt([detail('https://files.example/api', ['read'])], NOTES)).toBeNull();
    expect(toolsAllowedAt([{ type: 'errand_task', task_id: 't' }], NOTES)).toBeNull();
  });

  test('entries for this resource (in any canonical spelling) list the tools, unioned', () => {
    const details = [detail('HTTPS://Notes.Example:443/mcp', ['list_notes']), detail(NOTES, ['read_note'])];
    expect(toolsAllowedAt(details, NOTES)?.sort()).toEqual(['list_notes', 'read_note']);
  });

  test('an empty action list allows no tool; malformed entries allow nothing', () => {
    expect(toolsAllowedAt([detail(NOTES, [])], NOTES)).toEqual([]);
    expect(toolsAllowedAt('not an array', NOTES)).toEqual([]);
    expect(toolsAllowedAt([{ type: 'mcp_tool', locations: NOTES, actions: ['x'] }], NOTES)).toEqual([]);
  });
});

describe('isToolAllowed and toolCallNames', () => {
  test('null allows every tool; a list only its members', () => {
    expect(isToolAllowed(null, 'anything')).toBe(true);
    expect(isToolAllowed(['list_notes'], 'list_notes')).toBe(true);
    expect(isToolAllowed(['list_notes'], 'write_note')).toBe(false);
    expect(isToolAllowed([], 'list_notes')).toBe(false);
  });

  test('names every tools/call of a single message or a batch', () => {
    const call = (name: unknown) => ({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name } });
    expect(toolCallNames(call('a'))).toEqual(['a']);
    expect(toolCallNames([call('a'), { jsonrpc: '2.0', method: 'tools/list' }, call('b'), call(7)])).toEqual([
      'a',
      'b',
    ]);
    expect(toolCallNames(undefined)).toEqual([]);
    expect(toolCallNames('text')).toEqual([]);
  });
});
