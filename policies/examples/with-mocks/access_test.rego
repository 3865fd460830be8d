# The access policy's tests: each replaces the world it reads with `with`.
package mandate.authz_test

import data.mandate.authz
import data.mandate.partner
import rego.v1

# Clock values (ns since the epoch, UTC), half a second past the hour: far from any change of
# hour or day, so no rounding of a nanosecond clock changes what the policy sees.
monday_10am := 1796032800500000000

saturday_10am := 1795860000500000000

monday_8pm := 1796068800500000000

request(subject, action) := {
	"version": 1,
	"tenant": "acme",
	"subject": {"id": subject, "kind": "human", "attributes": {}},
	"actors": [],
	"action": action,
	"resource": {"type": "order", "id": "o-1", "attributes": {}},
	"token": {"scopes": [], "aud": [], "authorization_details": []},
	"context": {"time": 1796032800000},
}

codes(decision) := {reason.code | some reason in decision.reasons}

# The clock replaced by a value, then by a rule.

test_clerk_allowed_in_business_hours if {
	d := authz.decision with input as request("alice", "orders.read") with time.now_ns as monday_10am
	d.allow
	d.obligations == set()
}

test_clerk_denied_on_saturday if {
	d := authz.decision with input as request("alice", "orders.read") with time.now_ns as saturday_10am
	not d.allow
	codes(d) == {"outside_business_hours"}
}

test_clerk_denied_after_closing if {
	d := authz.decision with input as request("alice", "orders.read") with time.now_ns as monday_8pm
	codes(d) == {"outside_business_hours"}
}

test_oncall_allowed_after_closing if {
	authz.allow with input as request("bob", "orders.write") with time.now_ns as monday_8pm
}

# The business-hours rule replaced outright: the other checks still run.
test_business_hours_rule_replaced if {
	authz.allow with input as request("alice", "orders.read") with authz.business_hours as true
	not authz.allow with input as request("carol", "orders.write") with authz.business_hours as true
}

# Role bindings replaced in data: the policy sees only the replacement.

test_roles_from_data if {
	d := authz.decision with input as request("dave", "reports.read")
		with time.now_ns as monday_10am
		with data.roles as {"dave": ["auditor"]}
	d.allow
}

test_binding_removed if {
	d := authz.decision with input as request("alice", "orders.read")
		with time.now_ns as monday_10am
		with data.roles.alice as []
	codes(d) == {"not_permitted"}
}

test_opening_hours_configured if {
	authz.allow with input as request("alice", "orders.read")
		with time.now_ns as monday_8pm
		with data.hours.close as 22
}

# The risk check replaced by a value and by a function.

test_high_risk_denied if {
	d := authz.decision with input as request("alice", "orders.read")
		with time.now_ns as monday_10am
		with authz.risk_score as 95
	codes(d) == {"high_risk"}
}

risky(subject) := 60 if subject.id == "alice"

else := 0

test_medium_risk_steps_up if {
	d := authz.decision with input as request("alice", "orders.read")
		with time.now_ns as monday_10am
		with authz.risk_score as risky
	d.allow
	d.obligations == {{"type": "step_up", "acr_values": "urn:mandate:acr:mfa"}}
}

test_risk_mock_only_for_alice if {
	d := authz.decision with input as request("bob", "orders.read")
		with time.now_ns as monday_10am
		with authz.risk_score as risky
	d.obligations == set()
}

test_risk_from_the_feed if {
	codes(authz.decision) == {"high_risk"} with input as request("alice", "orders.read")
		with time.now_ns as monday_10am
		with data.risk.scores as {"alice": 85}
}

# http.send replaced by a function answering as the partner would, and by a fixed response.

partner_response(req) := {"status_code": 200, "body": {"allow": true}} if req.body.amount < 100

else := {"status_code": 200, "body": {"allow": false}}

test_partner_allows_small_amounts if {
	partner.allows({"amount": 20}) with http.send as partner_response
	not partner.allows({"amount": 500}) with http.send as partner_response
}

test_partner_unavailable if {
	not partner.allows({"amount": 20}) with http.send as {"status_code": 503, "body": {}}
}
