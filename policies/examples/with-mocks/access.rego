# An access policy written to be tested with `with` mocks: what it reads from the world — the
# clock (time.now_ns), the role bindings and the risk feed (data), a check behind a function —
# every test replaces, so the tests are deterministic and say exactly what they assume.
#
# Reasons ({"code", "message"}), stable codes:
#   not_permitted            no role of the subject permits the action (data.roles, data.permissions)
#   outside_business_hours   not Monday to Friday between data.hours.open and .close (data.hours.zone),
#                            unless the subject has the "oncall" role
#   high_risk                the subject's risk score is at or above data.risk.threshold
# Obligations:
#   {"type": "step_up", "acr_values": "urn:mandate:acr:mfa"}  a risk score at or above data.risk.step_up
package mandate.authz

import rego.v1

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": sort(deny),
	"obligations": obligations,
}

default allow := false

allow if count(deny) == 0

# The subject's roles, bound in data.
roles contains role if some role in object.get(data.roles, input.subject.id, [])

# An action is permitted when a role's permission pattern (`orders.*`) matches it.
permitted if {
	is_string(input.action)
	some role in roles
	some pattern in object.get(data.permissions, role, [])
	glob.match(pattern, ["."], input.action)
}

deny contains {"code": "not_permitted", "message": "no role of the subject permits the action"} if not permitted

weekdays := {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}

# Business hours by the clock: time.now_ns() in the configured zone.
business_hours if {
	now := [time.now_ns(), data.hours.zone]
	time.weekday(now) in weekdays
	[hour, _, _] := time.clock(now)
	hour >= data.hours.open
	hour < data.hours.close
}

deny contains {"code": "outside_business_hours", "message": "outside business hours"} if {
	not business_hours
	not "oncall" in roles
}

# The risk check: a score the risk service pushes into data.risk.scores (0 when it has none).
risk_score(subject) := object.get(data.risk.scores, subject.id, 0)

deny contains {"code": "high_risk", "message": "the subject's risk score is too high"} if {
	risk_score(input.subject) >= data.risk.threshold
}

obligations contains {"type": "step_up", "acr_values": "urn:mandate:acr:mfa"} if {
	risk_score(input.subject) >= data.risk.step_up
}
