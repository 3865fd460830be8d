package mandate.authz

import rego.v1

base := {
	"version": 1,
	"tenant": "acme",
	"subject": {"id": "alice", "kind": "human", "attributes": {"clearance": 2, "amr": ["pwd", "mfa"]}},
	"actors": [{"id": "agent-1", "kind": "agent", "attributes": {"tenant": "acme"}}],
	"client": {"id": "c1", "kind": "agent", "attributes": {}},
	"action": "orders.read",
	"resource": {"type": "order", "id": "o-1", "attributes": {"audience": "https://orders", "classification": 1}},
	"token": {"scopes": ["orders.read"], "aud": ["https://orders"], "authorization_details": []},
	"mandate": {"expires_at": 2000, "uses_remaining": 5},
	"context": {"time": 1000},
}

test_allows_a_scoped_request if decision.allow with input as base

test_scope_family_allows if decision.allow with input as object.union(base, {"token": {"scopes": ["orders.*"]}})

test_out_of_scope_denied if {
	d := decision with input as object.union(base, {"action": "orders.delete"})
	not d.allow
	d.reasons == ["the action is outside the token's scopes"]
}

test_expired_mandate_denied if {
	d := decision with input as object.union(base, {"context": {"time": 3000}})
	d.reasons == ["the mandate has expired"]
}

test_foreign_actor_denied if {
	d := decision with input as object.union(base, {"actors": [{"id": "x", "kind": "agent", "attributes": {"tenant": "other"}}]})
	d.reasons == ["an actor belongs to another tenant"]
}

test_authorization_details_narrow if {
	details := [{"type": "order", "actions": ["orders.read"], "locations": ["https://eu.orders"]}]
	d := decision with input as object.union(base, {"token": {"authorization_details": details}})
	d.reasons == ["no authorization detail covers the request"]
}

test_step_up_for_classified if {
	d := decision with input as object.union(base, {
		"subject": {"attributes": {"clearance": 5, "amr": ["pwd"]}},
		"resource": {"attributes": {"classification": 4}},
	})
	d.allow
	d.obligations == ["step_up"]
}
