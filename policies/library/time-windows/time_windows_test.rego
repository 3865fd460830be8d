package mandate.authz

import rego.v1

# Instants (ms since the epoch) and what they are in Europe/Berlin (CEST, UTC+2, in June 2024).
monday_0759 := 1717999140000

monday_0800 := 1717999200000

monday_0929 := 1718004540000

monday_0930 := 1718004600000

monday_1200 := 1718013600000

monday_1759 := 1718035140000

monday_1800 := 1718035200000

monday_2159 := 1718049540000

friday_2330 := 1718400600000

saturday_1015 := 1718439300000

saturday_1300 := 1718449200000

saturday_2300 := 1718485200000

sunday_0300 := 1718499600000

sunday_1200 := 1717927200000

next_monday_0559 := 1718596740000

next_monday_0600 := 1718596800000

# 2024-01-15 07:30 UTC, a Monday: 08:30 in Berlin (CET, UTC+1).
winter_monday_0730_utc := 1705303800000

at(action, ms) := {
	"version": 1,
	"tenant": "acme",
	"subject": {"id": "alice", "kind": "human", "attributes": {}},
	"actors": [],
	"action": action,
	"resource": {"type": "payment", "id": "p-1", "attributes": {}},
	"token": {"scopes": [], "aud": [], "authorization_details": []},
	"context": {"time": ms},
}

codes(d) := [r.code | some r in d.reasons]

# Working-hours window (payments.*)

test_inside_window if {
	d := decision with input as at("payments.create", monday_0800)
	d == {"allow": true, "reasons": [], "obligations": []}
	decision.allow with input as at("payments.create", monday_1759)
}

test_before_window if {
	d := decision with input as at("payments.create", monday_0759)
	not d.allow
	d.reasons == [{
		"code": "outside_time_window",
		"message": "payments.create is allowed only within its time windows (Europe/Berlin); it is Monday 07:59 there",
	}]
}

test_end_is_exclusive if {
	d := decision with input as at("payments.create", monday_1800)
	codes(d) == ["outside_time_window"]
}

test_weekend_outside_working_days if {
	d := decision with input as at("payments.create", saturday_1015)
	d.reasons == [{
		"code": "outside_time_window",
		"message": "payments.create is allowed only within its time windows (Europe/Berlin); it is Saturday 10:15 there",
	}]
}

test_time_zone_applies if {
	# 07:30 UTC is 08:30 in Berlin: inside; the same instant read in UTC is outside.
	decision.allow with input as at("payments.create", winter_monday_0730_utc)
	d := decision with input as at("payments.create", winter_monday_0730_utc) with data.time_windows.timezone as "UTC"
	codes(d) == ["outside_time_window"]
}

test_utc_by_default if {
	d := decision with input as at("payments.create", monday_0800) with data.time_windows as {"actions": data.time_windows.actions}
	# 08:00 in Berlin is 06:00 UTC.
	d.reasons[0].message == "payments.create is allowed only within its time windows (UTC); it is Monday 06:00 there"
}

# The most specific pattern decides alone

test_exact_pattern_wins_over_family if {
	not decision.allow with input as at("payments.refund", monday_0929)
	decision.allow with input as at("payments.refund", monday_0930)
	not decision.allow with input as at("payments.refund", monday_1200)
	decision.allow with input as at("payments.create", monday_1200)
}

test_longest_family_wins if {
	windows := {
		"reports.*": [{"days": ["Monday"], "start": "00:00", "end": "24:00"}],
		"reports.finance.*": [{"days": ["Tuesday"], "start": "00:00", "end": "24:00"}],
	}
	not decision.allow with input as at("reports.finance.export", monday_1200) with data.time_windows.actions as windows
	decision.allow with input as at("reports.sales.export", monday_1200) with data.time_windows.actions as windows
}

test_star_for_everything_else if {
	decision.allow with input as at("orders.read", saturday_2300)
	decision.allow with input as at("orders.read", sunday_1200)
}

# Several windows

test_any_window_may_be_open if {
	decision.allow with input as at("reports.export", monday_2159)
	decision.allow with input as at("reports.export", saturday_1015)
	not decision.allow with input as at("reports.export", saturday_1300)
	not decision.allow with input as at("reports.export", sunday_1200)
}

# Overnight windows (backups.run: Saturday and Sunday 22:00 to 06:00 the next day)

test_overnight_window if {
	decision.allow with input as at("backups.run", saturday_2300)
	decision.allow with input as at("backups.run", sunday_0300)
	decision.allow with input as at("backups.run", next_monday_0559)
	not decision.allow with input as at("backups.run", next_monday_0600)
	not decision.allow with input as at("backups.run", friday_2330)
	not decision.allow with input as at("backups.run", saturday_1015)
}

test_empty_window_never_open if {
	windows := {"*": [{"days": ["Monday"], "start": "08:00", "end": "08:00"}]}
	d := decision with input as at("payments.create", monday_0800) with data.time_windows.actions as windows
	codes(d) == ["outside_time_window"]
}

# Missing or broken configuration, missing time

test_no_window_for_the_action if {
	d := decision with input as at("orders.read", monday_1200) with data.time_windows.actions as {"payments.*": []}
	not d.allow
	d.reasons == [{"code": "no_time_window", "message": "no time window is configured for orders.read"}]
}

test_no_configuration_denies if {
	d := decision with input as at("orders.read", monday_1200) with data.time_windows as {}
	codes(d) == ["no_time_window"]
}

test_empty_window_list_denies if {
	d := decision with input as at("payments.create", monday_1200) with data.time_windows.actions as {"payments.*": []}
	not d.allow
	codes(d) == ["outside_time_window"]
}

test_family_does_not_match_without_the_dot if {
	d := decision with input as at("paymentsx", monday_1200) with data.time_windows.actions as {"payments.*": data.time_windows.actions["payments.*"]}
	codes(d) == ["no_time_window"]
}

test_invalid_window if {
	windows := {"*": [
		{"days": ["Monday"], "start": "8am", "end": "18:00"},
		{"days": ["Funday"], "start": "08:00", "end": "18:00"},
		{"days": ["Monday"], "start": "08:00", "end": 25},
		{"days": ["Monday"], "start": "00:00", "end": "24:00"},
	]}
	d := decision with input as at("payments.create", monday_1200) with data.time_windows.actions as windows
	not d.allow
	d.reasons == [
		{"code": "time_window_invalid", "message": "time window 0 of * is invalid"},
		{"code": "time_window_invalid", "message": "time window 1 of * is invalid"},
		{"code": "time_window_invalid", "message": "time window 2 of * is invalid"},
	]
}

test_windows_not_a_list if {
	d := decision with input as at("payments.create", monday_1200) with data.time_windows.actions as {"*": "always"}
	codes(d) == ["time_window_invalid"]
}

test_hour_numbers if {
	windows := {"*": [{"days": ["Monday"], "start": 8, "end": 18}]}
	decision.allow with input as at("payments.create", monday_0800) with data.time_windows.actions as windows
	not decision.allow with input as at("payments.create", monday_0759) with data.time_windows.actions as windows
}

test_time_missing if {
	r := object.remove(at("payments.create", 0), ["context"])
	d := decision with input as r
	not d.allow
	codes(d) == ["time_missing"]
}
