/** `host:port`, with an IPv6 address in brackets (`[::1]:443`): URLs, logs and labels alike. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
