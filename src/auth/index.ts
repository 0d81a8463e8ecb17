/** auth/: proxy Basic authentication (htpasswd users, verification cache, failure limit). */
export { Authenticator, parseBasic, type AuthResult, type AuthSettings } from './authenticator.js';
export { apr1, parseHtpasswd, schemeOf, verifyEntry, type HtpasswdEntry } from './htpasswd.js';
