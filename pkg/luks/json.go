package luks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// LUKS2 metadata is JSON that cryptsetup (json-c) parses into an object tree
// and re-serializes in full on every header write, keeping key order and
// printing it compactly (JSON_C_TO_STRING_PLAIN | NOSLASHESCAPE). To write
// headers byte-for-byte the way cryptsetup does, and to keep every field we
// do not understand (tokens, flags, future keys) intact, goheads keeps the
// same kind of tree: objects remember key order, scalars keep their exact
// source text. encoding/json cannot do either.

type jkind uint8

const (
	jObject jkind = iota
	jArray
	jString
	jNumber
	jLiteral // true, false, null
)

type jnode struct {
	kind jkind
	keys []string // object: decoded keys, in order
	vals []*jnode // object values (parallel to keys) or array elements
	raw  string   // scalars: exact source text (strings include the quotes)
	str  string   // jString: decoded value
}

// maxJSONDepth bounds recursion on untrusted input. cryptsetup metadata is 4
// levels deep; tokens written by other tools may add a few more.
const maxJSONDepth = 64

type jsonError struct {
	off int
	msg string
}

func (e *jsonError) Error() string { return fmt.Sprintf("JSON byte %d: %s", e.off, e.msg) }

type jparser struct {
	s     string
	i     int
	depth int
}

// parseJSON parses one JSON value at the start of s and returns it with the
// number of bytes consumed. It accepts exactly RFC 8259 (no comments, no
// trailing commas) and rejects duplicate object keys, which json-c would
// silently collapse: two readers must never see two different headers.
func parseJSON(s string) (*jnode, int, error) {
	p := &jparser{s: s}
	p.ws()
	n, err := p.value()
	if err != nil {
		return nil, 0, err
	}
	return n, p.i, nil
}

func (p *jparser) fail(format string, a ...any) error {
	return &jsonError{off: p.i, msg: fmt.Sprintf(format, a...)}
}

func (p *jparser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jparser) value() (*jnode, error) {
	if p.i >= len(p.s) {
		return nil, p.fail("unexpected end of JSON")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		start := p.i
		v, err := p.string()
		if err != nil {
			return nil, err
		}
		return &jnode{kind: jString, raw: p.s[start:p.i], str: v}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return &jnode{kind: jLiteral, raw: "true"}, nil
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return &jnode{kind: jLiteral, raw: "false"}, nil
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
		return &jnode{kind: jLiteral, raw: "null"}, nil
	default:
		return nil, p.fail("unexpected character %q", c)
	}
}

func (p *jparser) enter() error {
	p.depth++
	if p.depth > maxJSONDepth {
		return p.fail("nested deeper than %d levels", maxJSONDepth)
	}
	return nil
}

func (p *jparser) object() (*jnode, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	n := &jnode{kind: jObject}
	seen := map[string]bool{}
	p.i++ // '{'
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return n, nil
	}
	for {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.fail("expected object key")
		}
		k, err := p.string()
		if err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, p.fail("duplicate key %q", k)
		}
		seen[k] = true
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.fail("expected ':' after key %q", k)
		}
		p.i++
		p.ws()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		n.keys = append(n.keys, k)
		n.vals = append(n.vals, v)
		p.ws()
		if p.i >= len(p.s) {
			return nil, p.fail("unterminated object")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return n, nil
		default:
			return nil, p.fail("expected ',' or '}' in object")
		}
	}
}

func (p *jparser) array() (*jnode, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	n := &jnode{kind: jArray}
	p.i++ // '['
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return n, nil
	}
	for {
		p.ws()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		n.vals = append(n.vals, v)
		p.ws()
		if p.i >= len(p.s) {
			return nil, p.fail("unterminated array")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return n, nil
		default:
			return nil, p.fail("expected ',' or ']' in array")
		}
	}
}

func (p *jparser) string() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for {
		if p.i >= len(p.s) {
			return "", p.fail("unterminated string")
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c < 0x20:
			return "", p.fail("control character 0x%02x in string", c)
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.fail("unterminated escape")
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return "", err
				}
				if r >= 0xd800 && r < 0xdc00 && strings.HasPrefix(p.s[p.i:], `\u`) {
					p.i += 2
					r2, err := p.hex4()
					if err != nil {
						return "", err
					}
					if r2 >= 0xdc00 && r2 < 0xe000 {
						r = (r-0xd800)<<10 + (r2 - 0xdc00) + 0x10000
					} else {
						b.WriteRune(utf8.RuneError)
						r = r2
					}
				}
				b.WriteRune(r)
			default:
				return "", p.fail("invalid escape \\%c", e)
			}
		default:
			b.WriteByte(c)
			p.i++
		}
	}
}

func (p *jparser) hex4() (rune, error) {
	if p.i+4 > len(p.s) {
		return 0, p.fail("short \\u escape")
	}
	v, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
	if err != nil {
		return 0, p.fail("bad \\u escape %q", p.s[p.i:p.i+4])
	}
	p.i += 4
	return rune(v), nil
}

func (p *jparser) number() (*jnode, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.s) && p.s[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, p.fail("malformed number")
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.fail("malformed number")
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.fail("malformed number")
		}
	}
	return &jnode{kind: jNumber, raw: p.s[start:p.i]}, nil
}

// encode appends n in json-c's JSON_C_TO_STRING_PLAIN form.
func (n *jnode) encode(b []byte) []byte {
	switch n.kind {
	case jObject:
		b = append(b, '{')
		for i, k := range n.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = n.vals[i].encode(b)
		}
		return append(b, '}')
	case jArray:
		b = append(b, '[')
		for i, v := range n.vals {
			if i > 0 {
				b = append(b, ',')
			}
			b = v.encode(b)
		}
		return append(b, ']')
	default:
		return append(b, n.raw...)
	}
}

// appendJSONString escapes like json-c with NOSLASHESCAPE: quote, backslash
// and control characters only; other bytes are copied.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, fmt.Sprintf(`\u%04x`, c)...)
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

func jstr(s string) *jnode {
	return &jnode{kind: jString, raw: string(appendJSONString(nil, s)), str: s}
}

func jint(v int64) *jnode { return &jnode{kind: jNumber, raw: strconv.FormatInt(v, 10)} }

func jobj() *jnode { return &jnode{kind: jObject} }

// get returns the value of key in object n, or nil.
func (n *jnode) get(key string) *jnode {
	if n == nil || n.kind != jObject {
		return nil
	}
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

// set replaces the value of key in place (json-c keeps the position of an
// existing key) or appends it.
func (n *jnode) set(key string, v *jnode) {
	for i, k := range n.keys {
		if k == key {
			n.vals[i] = v
			return
		}
	}
	n.keys = append(n.keys, key)
	n.vals = append(n.vals, v)
}

func (n *jnode) del(key string) {
	for i, k := range n.keys {
		if k == key {
			n.keys = append(n.keys[:i:i], n.keys[i+1:]...)
			n.vals = append(n.vals[:i:i], n.vals[i+1:]...)
			return
		}
	}
}

func (n *jnode) clone() *jnode {
	c := *n
	c.keys = append([]string(nil), n.keys...)
	c.vals = make([]*jnode, len(n.vals))
	for i, v := range n.vals {
		c.vals[i] = v.clone()
	}
	return &c
}

var errJSONType = errors.New("wrong JSON type")

// Typed accessors used by the metadata decoder. Each names the path in its
// error so a bad header says which field is wrong.

func (n *jnode) objectAt(path string) (*jnode, error) {
	if n == nil {
		return nil, fmt.Errorf("%s: missing", path)
	}
	if n.kind != jObject {
		return nil, fmt.Errorf("%s: %w (want object)", path, errJSONType)
	}
	return n, nil
}

func (n *jnode) stringAt(path string) (string, error) {
	if n == nil {
		return "", fmt.Errorf("%s: missing", path)
	}
	if n.kind != jString {
		return "", fmt.Errorf("%s: %w (want string)", path, errJSONType)
	}
	if n.str == "" {
		return "", fmt.Errorf("%s: empty string", path)
	}
	return n.str, nil
}

// intAt reads a JSON integer in [lo, hi].
func (n *jnode) intAt(path string, lo, hi int64) (int64, error) {
	if n == nil {
		return 0, fmt.Errorf("%s: missing", path)
	}
	if n.kind != jNumber {
		return 0, fmt.Errorf("%s: %w (want integer)", path, errJSONType)
	}
	v, err := strconv.ParseInt(n.raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not an integer", path, n.raw)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%s: %d out of range [%d, %d]", path, v, lo, hi)
	}
	return v, nil
}

// uint64StringAt reads LUKS2's uint64-as-decimal-string fields ("offset",
// "size", "json_size"...): digits only, as cryptsetup's numbered() demands.
func (n *jnode) uint64StringAt(path string) (uint64, error) {
	s, err := n.stringAt(path)
	if err != nil {
		return 0, err
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%s: %q is not a decimal number", path, s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q out of range", path, s)
	}
	return v, nil
}

// numbered reports whether s is a non-empty run of decimal digits, the form
// LUKS2 requires for keyslot, digest, segment and token ids.
func numbered(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
