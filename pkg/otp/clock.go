package otp

import (
	"errors"
	"fmt"
	"time"
)

// MinPlausibleTime is the earliest clock reading taken as set. Heads'
// key-init.sh asks the user to set the time when `date +%Y` is below 2024.
var MinPlausibleTime = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// ErrClockNotSet means the system clock is obviously wrong, so a TOTP code
// computed from it cannot match the phone. Match it with errors.Is; the
// concrete error is a *ClockError.
var ErrClockNotSet = errors.New("system clock is not set")

// ClockError says why the clock is implausible.
type ClockError struct {
	// Now is the clock reading that was checked.
	Now time.Time
	// Limit is the earliest plausible time it was compared with.
	Limit time.Time
	// Reason names the limit: "2024" or "the firmware build time".
	Reason string
}

func (e *ClockError) Error() string {
	return fmt.Sprintf("%s: it reads %s, which is before %s (%s); set the date and time, then the TOTP code will match",
		ErrClockNotSet, e.Now.UTC().Format("2006-01-02 15:04 MST"), e.Reason, e.Limit.UTC().Format("2006-01-02 15:04 MST"))
}

// Is makes errors.Is(err, ErrClockNotSet) true.
func (e *ClockError) Is(target error) bool { return target == ErrClockNotSet }

// ClockPlausible returns nil when now could be the real time, and a
// *ClockError (errors.Is ErrClockNotSet) when it is obviously wrong: before
// 2024 (a reset RTC reads 2000 or 1970) or before buildTime, the time the
// firmware was built (a reproducible build uses its source date). A zero
// buildTime skips that check. The caller then says "the clock is not set"
// instead of showing a code that never matches.
//
// A clock that is plausible but off by minutes, or an RTC kept in local time,
// cannot be detected here; the user sees a mismatching code and is offered to
// set the time, as in Heads.
func ClockPlausible(now, buildTime time.Time) error {
	if now.Before(MinPlausibleTime) {
		return &ClockError{Now: now, Limit: MinPlausibleTime, Reason: "2024"}
	}
	if !buildTime.IsZero() && now.Before(buildTime) {
		return &ClockError{Now: now, Limit: buildTime, Reason: "the firmware build time"}
	}
	return nil
}
