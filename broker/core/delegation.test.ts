import { describe, expect, test } from 'vitest';
import { type DelegationRequest, narrowingProblem, type ToolDetail } from './delegation.js';

const NOTES = 'https://notes.example/mcp';
const FILES = 'https://files.example/api';
const tools = (location: string, actions: string[]): ToolDetail => ({
  type: 'mcp_tool',
  locations: [location],
  actions,
});

const asked: DelegationRequest = {
  grants: { [NOTES]: ['notes:read', 'notes:write'], [FILES]: ['files:read'] },
  authorizationDetails: [tools(NOTES, ['list_notes', 'read_note']), tools(FILES, ['get_file'])],
  maxTokenTtl: 300,
  maxDepth: 1,
  subAgents: null,
  expiresIn: 3600,
};
const grant = (over: Partial<DelegationRequest>): DelegationRequest => ({ ...asked, ...over });

describe('narrowingProblem: tool-level grants (RFC 9396 mcp_tool)', () => {
  test('what was asked, or fewer tools at each location, is a narrowing', () => {
    expect(narrowingProblem(asked, asked)).toBeNull();
    const fewer = [tools(NOTES, ['read_note']), tools(FILES, ['get_file'])];
    expect(narrowingProblem(asked, grant({ authorizationDetails: fewer }))).toBeNull();
  });

  test('no tools at a location asked with tools is refused, never read as "every tool"', () => {
    for (const authorizationDetails of [[], null, [tools(NOTES, ['list_notes'])]]) {
      expect(narrowingProblem(asked, grant({ authorizationDetails }))).toMatch(
        /^no tool is granted at https:\/\/(notes|files)\.example\/(mcp|api): keep at least one/,
      );
    }
  });

  test('a location left out with its scopes needs no tools; the others keep theirs', () => {
    const notesOnly = grant({
      grants: { [NOTES]: ['notes:read'] },
      authorizationDetails: [tools(NOTES, ['read_note'])],
    });
    expect(narrowingProblem(asked, notesOnly)).toBeNull();
    const filesUnticked = grant({
      grants: { [NOTES]: ['notes:read'], [FILES]: [] },
      authorizationDetails: [tools(NOTES, ['read_note'])],
    });
    expect(narrowingProblem(asked, filesUnticked)).toBeNull();
    const noneAtNotes = grant({ grants: { [NOTES]: ['notes:read'] }, authorizationDetails: [] });
    expect(narrowingProblem(asked, noneAtNotes)).toMatch(/no tool is granted at https:\/\/notes\.example\/mcp/);
  });

  test('tools not asked for, or at a location not asked with tools, are refused', () => {
    const wider = [tools(NOTES, ['list_notes', 'write_note']), tools(FILES, ['get_file'])];
    expect(narrowingProblem(asked, grant({ authorizationDetails: wider }))).toBe(
      'authorization_details may only be narrowed',
    );
    const unrestricted: DelegationRequest = { ...asked, authorizationDetails: null };
    expect(narrowingProblem(unrestricted, grant({ authorizationDetails: [tools(NOTES, ['read_note'])] }))).toBe(
      'authorization_details may only be narrowed',
    );
    expect(narrowingProblem(unrestricted, unrestricted)).toBeNull();
  });
});
