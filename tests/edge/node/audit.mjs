// Runs graphql-http's server audits against the URL given as the first argument and prints
// one JSON line: [{id, name, status, reason}] (status ok, warn for SHOULD/MAY, error for MUST).
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const results = await auditServer({ url });
console.log(JSON.stringify(results.map(({ id, name, status, reason }) =>
  ({ id, name, status, reason: reason ?? null }))));
