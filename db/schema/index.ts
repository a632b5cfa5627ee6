export * from './a2a.js';
export * from './audit.js';
export * from './clients.js';
export * from './delegations.js';
export * from './federation.js';
export * from './grants.js';
export * from './keys.js';
export * from './users.js';
