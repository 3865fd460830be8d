# Step-up authentication (RFC 9470): sensitive actions need a strong, recent enough authentication
# of the subject. Without one the decision is a deny that says how to fix it: reason
# `step_up_required` (or `authentication_too_old`) and the obligation
#   {"type": "step_up", "acr_values": "<configured acr>", "max_age": <seconds, when configured>}
# which a resource server turns into a 401 `WWW-Authenticate: Bearer
# error="insufficient_user_authentication", acr_values="...", max_age=...` challenge; the client
# comes back with a token from a stronger (or fresher) authentication. Only a deny carries it:
# a resource server that cannot challenge simply refuses. Everything that is not sensitive is
# allowed by this policy (combine it with the policies that decide those actions).
#
# Input (docs/design/authorize.md, "The decision input"):
#   input.action
#   input.subject.attributes.acr        the authentication context class reference of the token
#   input.subject.attributes.amr        authentication methods (RFC 8176), e.g. ["pwd", "otp", "mfa"]
#   input.subject.attributes.auth_time  when the subject authenticated (seconds since the epoch)
#   input.context.time                  now (ms since the epoch)
# Data (data.step_up):
#   sensitive_actions  action patterns needing step-up ("payments.*"; "*" for every action)
#   acr_values         what the challenge asks for; absent: "urn:mandate:acr:mfa"
#   accepted_acr       acr values that satisfy it; absent: [acr_values]
#   accepted_amr       amr values that satisfy it; absent: ["mfa"]
#   max_age            seconds an authentication stays fresh for sensitive actions; absent: no limit
#
# Reasons ({"code", "message"}), stable codes (both come with the step_up obligation):
#   step_up_required        sensitive action, and neither acr nor amr shows a strong authentication
#   authentication_too_old  sensitive action, max_age configured, and auth_time is older than it (or
#                           absent)
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

reason(code, message) := {"code": code, "message": message}

sensitive if {
	some pattern in as_list(config.sensitive_actions)
	action_matches(pattern, input.action)
}

default config := {}

config := data.step_up if is_object(data.step_up)

default acr_values := "urn:mandate:acr:mfa"

acr_values := config.acr_values

accepted_acr := config.accepted_acr

accepted_acr := [acr_values] if not config.accepted_acr

default accepted_amr := ["mfa"]

accepted_amr := config.accepted_amr

strong if input.subject.attributes.acr in accepted_acr

strong if {
	some method in as_list(input.subject.attributes.amr)
	method in accepted_amr
}

deny contains reason("step_up_required", msg) if {
	sensitive
	not strong
	msg := sprintf("%s needs a stronger authentication (%s)", [input.action, shown(acr_values)])
}

# Freshness (RFC 9470 max_age): only when configured.
fresh if {
	is_number(input.subject.attributes.auth_time)
	is_number(input.context.time)
	(input.context.time / 1000) - input.subject.attributes.auth_time <= config.max_age
}

deny contains reason("authentication_too_old", msg) if {
	sensitive
	is_number(config.max_age)
	not fresh
	msg := sprintf("%s needs an authentication within the last %v seconds", [input.action, config.max_age])
}

obligations := [o | o := step_up]

step_up := object.union(
	{"type": "step_up", "acr_values": acr_values},
	{"max_age": config.max_age | is_number(config.max_age)},
) if count(deny) > 0

# "payments.create" matches itself, "payments.*" every action under "payments.", "*" every action.
action_matches(pattern, action) if {
	is_string(action)
	pattern == action
}

action_matches("*", action) if is_string(action)

action_matches(pattern, action) if {
	is_string(pattern)
	is_string(action)
	endswith(pattern, ".*")
	startswith(action, trim_suffix(pattern, "*"))
}

shown(x) := x if is_string(x)

shown(x) := json.marshal(x) if not is_string(x)

# A list, or [] for anything else (Mandate's compiler fails `some .. in` over a non-collection).
as_list(x) := x if is_array(x)

as_list(x) := [] if not is_array(x)
