# Time windows: an action is allowed only on the weekdays and between the hours configured for it,
# in a configured time zone (e.g. payments on working days 08:00-18:00 Europe/Berlin).
#
# Input (docs/design/authorize.md, "The decision input"):
#   input.action         "payments.create"
#   input.context.time   ms since the epoch (always set by Authorize)
# Data (data.time_windows):
#   timezone   IANA zone name the windows are in ("Europe/Berlin"); absent: "UTC"
#   actions    {"<action pattern>": [{"days": ["Monday", ...], "start": "08:00", "end": "18:00"}, ...]}
#              Patterns: "payments.create" is that action, "payments.*" every action under
#              "payments.", "*" every action. The most specific pattern decides alone: the exact
#              action, else the longest matching "x.*", else "*".
#              A window is open on its days from start (inclusive) to end (exclusive); "HH:MM" or a
#              whole hour as a number (8, 18); "24:00" (or 24) ends at midnight. When end is before
#              start the window runs overnight into the next day (days are the days it starts on).
#              start == end is an empty window. Days are Go/OPA weekday names, "Monday" ... "Sunday".
#
# Reasons ({"code", "message"}), stable codes:
#   outside_time_window  no window configured for the action is open now
#   no_time_window       no pattern in data.time_windows.actions matches the action
#   time_window_invalid  a window of the action's pattern has unreadable days/start/end
#   time_missing         input.context.time is not a number
# Obligations: none.
package mandate.authz

import rego.v1

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": sort(deny),
	"obligations": [],
}

default allow := false

allow if {
	count(deny) == 0
	any_open
}

reason(code, message) := {"code": code, "message": message}

# Which windows apply: the most specific pattern's.

default configured := {}

configured := data.time_windows.actions if is_object(data.time_windows.actions)

exact_pattern if configured[input.action]

family_patterns contains pattern if {
	some pattern, _ in configured
	endswith(pattern, ".*")
	is_string(input.action)
	startswith(input.action, trim_suffix(pattern, "*"))
}

selected := input.action if exact_pattern

selected := pattern if {
	not exact_pattern
	longest := max({count(p) | some p in family_patterns})
	some pattern in family_patterns
	count(pattern) == longest
}

selected := "*" if {
	not exact_pattern
	count(family_patterns) == 0
	configured["*"]
	is_string(input.action)
}

windows := configured[selected]

# Only a list of windows is iterated (Mandate's compiler fails `some .. in` over a non-collection).
window_list := windows if is_array(windows)

deny contains reason("no_time_window", sprintf("no time window is configured for %s", [shown(requested_action)])) if {
	not selected
}

# Now, in the configured zone.

default timezone := "UTC"

timezone := data.time_windows.timezone

deny contains reason("time_missing", "the request has no time") if not is_number(input.context.time)

now_ns := round(input.context.time) * 1000000

today := time.weekday([now_ns, timezone])

now_minute := (clock[0] * 60) + clock[1] if clock := time.clock([now_ns, timezone])

previous_day := {
	"Monday": "Sunday", "Tuesday": "Monday", "Wednesday": "Tuesday", "Thursday": "Wednesday",
	"Friday": "Thursday", "Saturday": "Friday", "Sunday": "Saturday",
}

open(w) if {
	[start, end] := bounds(w)
	start < end
	today in w.days
	start <= now_minute
	now_minute < end
}

# Overnight: from start on one of its days to end on the next day.
open(w) if {
	[start, end] := bounds(w)
	start > end
	today in w.days
	now_minute >= start
}

open(w) if {
	[start, end] := bounds(w)
	start > end
	previous_day[today] in w.days
	now_minute < end
}

deny contains reason("outside_time_window", msg) if {
	is_number(input.context.time)
	is_array(windows)
	not any_open
	msg := sprintf("%s is allowed only within its time windows (%s); it is %s %02d:%02d there", [
		input.action, timezone, today, floor(now_minute / 60), now_minute % 60,
	])
}

any_open if {
	some w in window_list
	open(w)
}

deny contains reason("time_window_invalid", sprintf("time window %d of %s is invalid", [i, selected])) if {
	some i, w in window_list
	not valid(w)
}

deny contains reason("time_window_invalid", sprintf("the time windows of %s are not a list", [selected])) if {
	selected
	not is_array(windows)
}

valid(w) if {
	bounds(w)
	is_array(w.days)
	every day in w.days {
		previous_day[day]
	}
}

# Window bounds in minutes of the day.
bounds(w) := [minute_of(w.start), minute_of(w.end)]

minute_of(hour) := hour * 60 if {
	is_number(hour)
	hour >= 0
	hour <= 24
	hour == floor(hour)
}

minute_of(hhmm) := (number_of(hh) * 60) + number_of(mm) if {
	is_string(hhmm)
	regex.match(`^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$`, hhmm)
	[hh, mm] := split(hhmm, ":")
}

# "08" → 8: to_number refuses a leading zero in Mandate's compiler, so strip it first.
number_of(digits) := 0 if trim_left(digits, "0") == ""

number_of(digits) := to_number(trim_left(digits, "0")) if trim_left(digits, "0") != ""

default requested_action := null

requested_action := input.action

shown(x) := x if is_string(x)

shown(x) := json.marshal(x) if not is_string(x)
