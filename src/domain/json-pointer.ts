/** JSON Pointer (RFC 6901) as a URI fragment, for a path into a document: `#/0/properties`. */
export function jsonPointer(path: readonly PropertyKey[]): string {
  return '#' + path.map((p) => '/' + String(p).replaceAll('~', '~0').replaceAll('/', '~1')).join('');
}
