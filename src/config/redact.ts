/**
 * Hides credentials that a setting's value may carry before it is shown in a message:
 * a URL's userinfo (`user:password@`) and the values of query parameters whose names
 * look like secrets (token, key, secret, password, signature, ...). Works on the text,
 * so it applies whether or not the URL parses (`http://user:pw@` has no host and does
 * not), and anywhere in a longer message.
 */

/** Query parameter names, or parts of them, whose values are treated as secrets. */
const SECRET_PARAM = /token|secret|passw|pwd|key|sig|auth|credential|session|code/i;

const SCHEME = /[a-z][a-z0-9+.-]*:\/\//gi;
/** Where a URL written in a message ends: whitespace, a quote or a bracket around it. */
const URL_END = /[\s"'<>(){}`]/;

export function redactSecrets(text: string): string {
  let out = '';
  let from = 0;
  const schemes = [...text.matchAll(SCHEME)];
  for (const [i, m] of schemes.entries()) {
    const start = m.index + m[0].length;
    if (start < from) continue;
    // A URL ends before the next one begins (a comma list of them is one word).
    const limit = schemes[i + 1]?.index ?? text.length;
    let end = start;
    while (end < limit && !URL_END.test(text[end])) end++;
    out += text.slice(from, start) + redactUrlRest(text.slice(start, end));
    from = end;
  }
  return out + text.slice(from);
}

/** `rest` is what follows `scheme://`, up to the end of the URL. */
function redactUrlRest(rest: string): string {
  // In a URL that does not parse, the userinfo ends at the last @ before the query or
  // fragment: a password may hold a slash or an @ that its writer forgot to encode.
  const queryAt = rest.search(/[?#]/);
  const beforeQuery = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const at = hasNoUserinfo(rest) ? -1 : beforeQuery.lastIndexOf('@');
  let out = at === -1 ? rest : `***${rest.slice(at)}`;
  const q = out.indexOf('?');
  if (q !== -1) {
    out = out.slice(0, q) + out.slice(q).replace(/([?&;])([^=&;#]*)=([^&;#]*)/g,
      (whole, sep: string, name: string, value: string) => (value !== '' && SECRET_PARAM.test(name) ? `${sep}${name}=***` : whole));
  }
  return out;
}

/** True when the URL parses and carries no credentials: an @ further on is part of its path. */
function hasNoUserinfo(rest: string): boolean {
  try {
    const u = new URL(`http://${rest}`);
    return u.username === '' && u.password === '';
  } catch {
    return false;
  }
}
