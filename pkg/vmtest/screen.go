package vmtest

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// screen is a minimal VT100/ANSI terminal: enough of cursor addressing,
// erasing and line feeds to know what a user would see on an 80x24 serial
// console while a full-screen program (the menu) draws with cursor jumps.
// Colours and modes are ignored.
type screen struct {
	w, h     int
	cells    [][]rune
	row, col int
	state    int // 0 text, 1 ESC, 2 CSI, 3 charset designator, 4 OSC, 5 OSC ESC
	params   []byte
	pending  []byte // incomplete UTF-8
}

func newScreen(w, h int) *screen {
	s := &screen{w: w, h: h}
	s.clear()
	return s
}

func (s *screen) clear() {
	s.cells = make([][]rune, s.h)
	for i := range s.cells {
		s.cells[i] = []rune(strings.Repeat(" ", s.w))
	}
}

func (s *screen) put(r rune) {
	if s.col >= s.w {
		s.col = 0
		s.lineFeed()
	}
	s.cells[s.row][s.col] = r
	s.col++
}

func (s *screen) lineFeed() {
	s.row++
	if s.row >= s.h {
		copy(s.cells, s.cells[1:])
		s.cells[s.h-1] = []rune(strings.Repeat(" ", s.w))
		s.row = s.h - 1
	}
}

func (s *screen) Write(p []byte) {
	for _, b := range p {
		switch s.state {
		case 1: // after ESC
			switch b {
			case '[':
				s.state, s.params = 2, s.params[:0]
			case '(', ')', '*', '+':
				s.state = 3
			case ']':
				s.state = 4
			default:
				s.state = 0
			}
			continue
		case 2: // CSI parameters until a final byte
			if b >= 0x40 && b <= 0x7e {
				s.csi(b)
				s.state = 0
			} else {
				s.params = append(s.params, b)
			}
			continue
		case 3:
			s.state = 0
			continue
		case 4: // OSC until BEL or ESC \
			if b == 7 {
				s.state = 0
			} else if b == 0x1b {
				s.state = 5
			}
			continue
		case 5:
			s.state = 0
			continue
		}
		switch {
		case b == 0x1b:
			s.state = 1
		case b == '\r':
			s.col = 0
		case b == '\n':
			s.lineFeed()
		case b == '\b':
			if s.col > 0 {
				s.col--
			}
		case b < 0x20 || b == 0x7f:
		default:
			s.pending = append(s.pending, b)
			if utf8.FullRune(s.pending) {
				r, _ := utf8.DecodeRune(s.pending)
				s.pending = s.pending[:0]
				s.put(r)
			}
		}
	}
}

func (s *screen) nums(def int) []int {
	str := strings.TrimLeft(string(s.params), "?>=")
	var out []int
	for _, f := range strings.Split(str, ";") {
		n, err := strconv.Atoi(f)
		if err != nil || n == 0 {
			n = def
		}
		out = append(out, n)
	}
	return out
}

func (s *screen) csi(final byte) {
	n := s.nums(1)
	clamp := func() {
		s.row = max(0, min(s.row, s.h-1))
		s.col = max(0, min(s.col, s.w-1))
	}
	switch final {
	case 'H', 'f':
		s.row = n[0] - 1
		s.col = 0
		if len(n) > 1 {
			s.col = n[1] - 1
		}
		clamp()
	case 'A':
		s.row -= n[0]
		clamp()
	case 'B':
		s.row += n[0]
		clamp()
	case 'C':
		s.col += n[0]
		clamp()
	case 'D':
		s.col -= n[0]
		clamp()
	case 'G':
		s.col = n[0] - 1
		clamp()
	case 'd':
		s.row = n[0] - 1
		clamp()
	case 'J':
		mode := s.nums(0)[0]
		switch mode {
		case 2, 3:
			s.clear()
		case 0:
			for c := s.col; c < s.w; c++ {
				s.cells[s.row][c] = ' '
			}
			for r := s.row + 1; r < s.h; r++ {
				s.cells[r] = []rune(strings.Repeat(" ", s.w))
			}
		}
	case 'K':
		mode := s.nums(0)[0]
		from, to := s.col, s.w
		if mode == 1 {
			from, to = 0, s.col+1
		} else if mode == 2 {
			from = 0
		}
		for c := from; c < to && c < s.w; c++ {
			s.cells[s.row][c] = ' '
		}
	}
}

// Text is the screen, one line per row, trailing blanks trimmed.
func (s *screen) Text() string {
	var b strings.Builder
	for _, r := range s.cells {
		b.WriteString(strings.TrimRight(string(r), " "))
		b.WriteByte('\n')
	}
	return b.String()
}
