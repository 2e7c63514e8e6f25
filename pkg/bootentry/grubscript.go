package bootentry

import (
	"slices"
	"strings"
)

// The GRUB script lexer and parser: grub.cfg text to a tree of commands,
// menus and blocks, following GRUB's grub-core/script/yylex.l quoting and
// reserved words. Nothing here evaluates anything; see grub.go.

const (
	maxGrubDepth = 64 // nesting of blocks; deeper input is hostile
	maxGrubToks  = 1 << 20
	maxVarRef    = 256 // longest ${name} looked for
)

// ---- lexer ----

type partKind uint8

const (
	partLit    partKind = iota // unquoted literal text (escapes resolved)
	partQuoted                 // literal text from '...' or "..."
	partVar                    // unquoted $var: split on white space
	partQVar                   // $var inside "...": not split
)

type part struct {
	kind partKind
	text string // the text, or the variable name
}

type word struct {
	parts []part
	line  int
}

// literal returns the word's text when it is plain unquoted text (the only
// form in which GRUB recognises reserved words like `menuentry` or `fi`).
func (w word) literal() (string, bool) {
	if len(w.parts) != 1 || w.parts[0].kind != partLit {
		return "", false
	}
	return w.parts[0].text, true
}

type tokKind uint8

const (
	tWord tokKind = iota
	tSep          // newline or ';'
	tLBrace
	tRBrace
	tEOF
)

type token struct {
	kind tokKind
	w    word
	line int
}

type lexer struct {
	src  string
	name string
	pos  int
	line int
	toks []token
	res  *Result
}

func lexGrub(name, src string, res *Result) []token {
	lx := &lexer{src: src, name: name, line: 1, res: res}
	lx.run()
	lx.toks = append(lx.toks, token{kind: tEOF, line: lx.line})
	return lx.toks
}

func (lx *lexer) emit(k tokKind) {
	lx.toks = append(lx.toks, token{kind: k, line: lx.line})
}

func (lx *lexer) run() {
	for lx.pos < len(lx.src) {
		if len(lx.toks) >= maxGrubToks {
			lx.res.warn(lx.name, lx.line, "more than %d tokens; rest of file ignored", maxGrubToks)
			return
		}
		c := lx.src[lx.pos]
		switch c {
		case ' ', '\t', '\r', '\f', '\v':
			lx.pos++
		case '\n':
			lx.emit(tSep)
			lx.line++
			lx.pos++
		case ';':
			lx.emit(tSep)
			lx.pos++
		case '#':
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
				lx.pos++
			}
		case '{':
			lx.emit(tLBrace)
			lx.pos++
		case '}':
			lx.emit(tRBrace)
			lx.pos++
		default:
			if c == '\\' && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '\n' {
				lx.pos += 2
				lx.line++
				continue
			}
			w, ok := lx.word()
			if !ok {
				return // unterminated quote: GRUB rejects the rest too
			}
			lx.toks = append(lx.toks, token{kind: tWord, w: w, line: w.line})
		}
	}
}

// word reads one word. It returns false on an unterminated quote, after
// recording a warning; the rest of the input is then ignored.
func (lx *lexer) word() (word, bool) {
	w := word{line: lx.line}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			w.parts = append(w.parts, part{partLit, lit.String()})
			lit.Reset()
		}
	}
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch c {
		case ' ', '\t', '\r', '\f', '\v', '\n', ';', '{', '}':
			flush()
			return w, true
		case '\\':
			if lx.pos+1 >= len(lx.src) {
				lit.WriteByte('\\')
				lx.pos++
				continue
			}
			n := lx.src[lx.pos+1]
			lx.pos += 2
			if n == '\n' {
				lx.line++
				continue
			}
			lit.WriteByte(n)
		case '\'':
			end := strings.IndexByte(lx.src[lx.pos+1:], '\'')
			if end < 0 {
				lx.res.warn(lx.name, lx.line, "unterminated single quote; rest of file ignored (GRUB rejects it too)")
				lx.pos = len(lx.src)
				return w, false
			}
			flush()
			text := lx.src[lx.pos+1 : lx.pos+1+end]
			w.parts = append(w.parts, part{partQuoted, text})
			lx.line += strings.Count(text, "\n")
			lx.pos += end + 2
		case '"':
			flush()
			lx.pos++
			if !lx.dquote(&w) {
				return w, false
			}
		case '$':
			if lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '"' { // $"..." (gettext)
				flush()
				lx.pos += 2
				if !lx.dquote(&w) {
					return w, false
				}
				continue
			}
			name, n := varRef(lx.src[lx.pos:])
			if n == 0 {
				// Not a variable GRUB knows ($(, $ , ...): literal text.
				// "${" is taken as a pair so the brace does not become a block.
				if strings.HasPrefix(lx.src[lx.pos:], "${") {
					lit.WriteString("${")
					lx.pos += 2
				} else {
					lit.WriteByte('$')
					lx.pos++
				}
				continue
			}
			flush()
			w.parts = append(w.parts, part{partVar, name})
			lx.pos += n
		default:
			lit.WriteByte(c)
			lx.pos++
		}
	}
	flush()
	return w, true
}

// dquote reads a "..." body after its opening quote.
func (lx *lexer) dquote(w *word) bool {
	start := lx.line
	var b strings.Builder
	quoted := false // emit an empty quoted part for ""
	flush := func() {
		if b.Len() > 0 || !quoted {
			w.parts = append(w.parts, part{partQuoted, b.String()})
			b.Reset()
			quoted = true
		}
	}
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch c {
		case '"':
			lx.pos++
			flush()
			return true
		case '\\':
			if lx.pos+1 < len(lx.src) {
				switch n := lx.src[lx.pos+1]; n {
				case '$', '"', '\\':
					b.WriteByte(n)
					lx.pos += 2
					continue
				case '\n':
					lx.line++
					lx.pos += 2
					continue
				}
			}
			b.WriteByte('\\')
			lx.pos++
		case '$':
			name, n := varRef(lx.src[lx.pos:])
			if n == 0 {
				b.WriteByte('$')
				lx.pos++
				continue
			}
			if b.Len() > 0 {
				flush()
			}
			w.parts = append(w.parts, part{partQVar, name})
			quoted = true
			lx.pos += n
		case '\n':
			lx.line++
			b.WriteByte(c)
			lx.pos++
		default:
			b.WriteByte(c)
			lx.pos++
		}
	}
	lx.res.warn(lx.name, start, "unterminated double quote; rest of file ignored (GRUB rejects it too)")
	return false
}

// varRef parses $name, ${name}, $1, ${1}, $?, $# at the start of s (s[0] is
// '$') and returns the name and the length consumed, or 0.
func varRef(s string) (string, int) {
	if len(s) < 2 {
		return "", 0
	}
	if s[1] == '{' {
		// Names are short; looking further for '}' would make a file of
		// "${${${..." quadratic.
		end := strings.IndexByte(s[:min(len(s), maxVarRef)], '}')
		if end < 0 {
			return "", 0
		}
		name := s[2:end]
		if validVarName(name) || allDigits(name) || name == "?" || name == "#" {
			return name, end + 1
		}
		return "", 0
	}
	switch c := s[1]; {
	case c == '?' || c == '#':
		return s[1:2], 2
	case c >= '0' && c <= '9':
		n := 1
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		return s[1:n], n
	case isNameStart(c):
		n := 2
		for n < len(s) && isNameChar(s[n]) {
			n++
		}
		return s[1:n], n
	}
	return "", 0
}

func isNameStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
func isNameChar(c byte) bool { return isNameStart(c) || (c >= '0' && c <= '9') }

func validVarName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
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

// ---- parser ----

type nodeKind uint8

const (
	nCmd   nodeKind = iota
	nMenu           // menuentry / submenu
	nBlock          // if, for, while, until, function, { }
)

type node struct {
	kind    nodeKind
	keyword string // nMenu: menuentry|submenu; nBlock: if|for|while|until|function|{
	line    int
	words   []word // nCmd: the command; nMenu: the arguments
	body    []node // every command inside, conditions included
	closed  bool   // saw the closing '}' / fi / done
}

type parser struct {
	name  string
	toks  []token
	i     int
	depth int
	dead  bool // nesting limit hit: behave as if at EOF
	res   *Result
}

func parseGrubScript(name, src string, res *Result) []node {
	p := &parser{name: name, toks: lexGrub(name, src, res), res: res}
	nodes, _ := p.list(nil, false)
	return nodes
}

func (p *parser) peek() token {
	if p.dead {
		return token{kind: tEOF}
	}
	return p.toks[p.i]
}

func (p *parser) next() token {
	t := p.peek()
	if t.kind != tEOF {
		p.i++
	}
	return t
}

const endEOF, endBrace = "", "}"

// list parses commands until EOF, a '}' (when brace is set) or a reserved
// word in stop at the start of a command (not consumed). It returns the
// nodes and what ended the list.
func (p *parser) list(stop []string, brace bool) ([]node, string) {
	var nodes []node
	for {
		t := p.peek()
		switch t.kind {
		case tEOF:
			return nodes, endEOF
		case tSep:
			p.next()
		case tRBrace:
			p.next()
			if brace {
				return nodes, endBrace
			}
			p.res.warn(p.name, t.line, "unexpected '}' ignored")
		case tLBrace:
			p.next()
			n := node{kind: nBlock, keyword: "{", line: t.line}
			var end string
			n.body, end = p.nested(nil, true)
			n.closed = end == endBrace
			if !n.closed {
				p.res.warn(p.name, t.line, "'{' has no closing '}'")
			}
			nodes = append(nodes, n)
		case tWord:
			if lit, ok := t.w.literal(); ok && slices.Contains(stop, lit) {
				return nodes, lit
			}
			nodes = append(nodes, p.statement())
		}
	}
}

// nested parses a block body one level deeper, within the nesting limit.
func (p *parser) nested(stop []string, brace bool) ([]node, string) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxGrubDepth {
		if !p.dead {
			p.res.warn(p.name, p.peek().line, "blocks nested deeper than %d levels; rest of file ignored", maxGrubDepth)
		}
		p.dead = true
		return nil, endEOF
	}
	return p.list(stop, brace)
}

func (p *parser) statement() node {
	t := p.next()
	lit, _ := t.w.literal()
	switch lit {
	case "menuentry", "submenu":
		n := node{kind: nMenu, keyword: lit, line: t.line}
		for p.peek().kind == tWord {
			n.words = append(n.words, p.next().w)
		}
		for p.peek().kind == tSep {
			p.next()
		}
		if p.peek().kind != tLBrace {
			p.res.warn(p.name, t.line, "%s has no '{'", lit)
			return n
		}
		p.next()
		var end string
		n.body, end = p.nested(nil, true)
		n.closed = end == endBrace
		return n
	case "function":
		n := node{kind: nBlock, keyword: lit, line: t.line}
		if p.peek().kind == tWord { // the function's name
			p.next()
		}
		for p.peek().kind == tSep {
			p.next()
		}
		if p.peek().kind != tLBrace {
			p.res.warn(p.name, t.line, "function has no '{'")
			return n
		}
		p.next()
		var end string
		n.body, end = p.nested(nil, true)
		n.closed = end == endBrace
		return n
	case "if":
		n := node{kind: nBlock, keyword: lit, line: t.line}
		stop := []string{"then"}
		for {
			body, end := p.nested(stop, false)
			n.body = append(n.body, body...)
			switch end {
			case "then":
				p.next()
				stop = []string{"elif", "else", "fi"}
			case "elif":
				p.next()
				stop = []string{"then"}
			case "else":
				p.next()
				stop = []string{"fi"}
			case "fi":
				p.next()
				n.closed = true
				return n
			default:
				p.res.warn(p.name, t.line, "'if' has no 'fi'")
				return n
			}
		}
	case "for", "while", "until":
		n := node{kind: nBlock, keyword: lit, line: t.line}
		if lit == "for" { // for NAME in WORDS ; do
			for p.peek().kind == tWord {
				p.next()
			}
		}
		cond, end := p.nested([]string{"do"}, false)
		n.body = append(n.body, cond...)
		if end != "do" {
			p.res.warn(p.name, t.line, "'%s' has no 'do'", lit)
			return n
		}
		p.next()
		body, end := p.nested([]string{"done"}, false)
		n.body = append(n.body, body...)
		if end != "done" {
			p.res.warn(p.name, t.line, "'%s' has no 'done'", lit)
			return n
		}
		p.next()
		n.closed = true
		return n
	case "then", "elif", "else", "fi", "do", "done":
		p.res.warn(p.name, t.line, "unexpected '%s' ignored", lit)
	}
	n := node{kind: nCmd, line: t.line, words: []word{t.w}}
	for p.peek().kind == tWord {
		n.words = append(n.words, p.next().w)
	}
	return n
}
