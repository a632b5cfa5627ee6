import { ErrandAgent, workloadIdentity } from '@errand/agent';

/** Calls one tool of an MCP server (a stateless JSON-RPC request). */
const callTool = (name: string, args: Record<string, unknown>): RequestInit => ({
  method: 'POST',
  headers: {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-11-25',
  },
  body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } }),
});

export async function tidyNotes(env: {
  issuer: string; // Errand
  notes: string; // an MCP server registered at Errand as a resource
  user: string; // the person the agent works for
  workloadToken: () => Promise<string>; // a fresh JWT-SVID (or Kubernetes / CI token) per call
}) {
  // No secret anywhere: the platform vouches for the agent; the DPoP key lives in memory only.
  const credential = workloadIdentity(env.workloadToken);
  const agent = await ErrandAgent.connect({ issuer: env.issuer, credential });

  // Ask the user; this resolves once they approve in Errand (CIBA).
  const delegation = await agent.requestDelegation({
    user: env.user,
    resources: [env.notes],
    scope: 'notes:read notes:write',
    bindingMessage: 'Tidy up my notes',
    maxDepth: 1,
  });

  // A task with its own DPoP-bound token, refreshed before it expires.
  const task = await agent.startTask(delegation, { resource: env.notes });
  const wrote = await task.fetch(env.notes, callTool('write_note', { title: 'Plan', body: 'tidy' }));

  // A sub-agent with its own key gets a narrower token under the same task.
  const helper = await ErrandAgent.connect({ issuer: env.issuer, credential });
  const subTask = await helper.joinTask(await task.handOff(), { scope: 'notes:read' });
  const listed = await subTask.fetch(env.notes, callTool('list_notes', {}));

  await task.end(); // the sub-task ends with it; every token of both stops working
  return { taskId: task.id, subTaskId: subTask.id, wrote: wrote.status, listed: listed.status };
}
