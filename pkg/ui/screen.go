package ui

import "github.com/gdamore/tcell/v2"

// diffScreen keeps tcell's cell diffing when tview clears the screen before
// every draw: tcell's Clear repaints the whole terminal, which on a serial
// console is kilobytes for every clock tick; filling the buffer instead sends
// only the cells that changed.
type diffScreen struct{ tcell.Screen }

func (s diffScreen) Clear() { s.Fill(' ', tcell.StyleDefault) }

// newScreen is the console screen the menu runs on.
func newScreen() (tcell.Screen, error) {
	s, err := tcell.NewScreen()
	if err != nil {
		return nil, err
	}
	return diffScreen{s}, nil
}
