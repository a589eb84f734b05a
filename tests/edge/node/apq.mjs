// Apollo Client with its persisted-queries link against the URL given first, with the bearer
// token given second: runs the query given third twice (a fresh client each time) and prints one
// JSON line: the two results and the bodies the link sent.
import { ApolloClient, HttpLink, InMemoryCache } from '@apollo/client/core/index.js';
import { parse } from 'graphql';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries/index.js';
import { createHash } from 'node:crypto';

const [url, token, text] = process.argv.slice(2);
const sent = [];
const recordingFetch = async (input, init) => {
  sent.push(JSON.parse(init.body));
  return fetch(input, init);
};
const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const query = parse(text);
const results = [];
for (let run = 0; run < 2; run++) {
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: createPersistedQueryLink({ sha256 }).concat(new HttpLink({
      uri: url, fetch: recordingFetch, headers: { authorization: `Bearer ${token}` } })),
  });
  const { data } = await client.query({ query, fetchPolicy: 'network-only' });
  results.push(data);
}
console.log(JSON.stringify({ results, sent }));
