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

codes(d) := [r.code | some r in d.reasons]

test_allows_a_scoped_request if {
	d := decision with input as base
	d.allow
	d.reasons == []
	d.obligations == []
}

test_scope_family_allows if decision.allow with input as object.union(base, {"token": {"scopes": ["orders.*"]}})

test_scope_family_needs_the_dot if {
	d := decision with input as object.union(base, {"token": {"scopes": ["order*"]}})
	codes(d) == ["scope_missing"]
}

test_out_of_scope_denied if {
	d := decision with input as object.union(base, {"action": "orders.delete"})
	not d.allow
	d.reasons == [{"code": "scope_missing", "message": "the action is outside the token's scopes"}]
}

test_no_scopes_denied if {
	d := decision with input as object.union(base, {"token": {"scopes": []}})
	not d.allow
	codes(d) == ["scope_missing"]
}

test_expired_mandate_denied if {
	d := decision with input as object.union(base, {"context": {"time": 3000}})
	not d.allow
	d.reasons == [{"code": "mandate_expired", "message": "the mandate has expired"}]
}

test_mandate_expiring_now_denied if {
	d := decision with input as object.union(base, {"context": {"time": 2000}})
	codes(d) == ["mandate_expired"]
}

test_exhausted_mandate_denied if {
	d := decision with input as object.union(base, {"mandate": {"uses_remaining": 0}})
	not d.allow
	codes(d) == ["mandate_exhausted"]
}

test_without_mandate_allowed if {
	d := decision with input as object.remove(base, ["mandate"])
	d.allow
}

test_foreign_actor_denied if {
	d := decision with input as object.union(base, {"actors": [{"id": "x", "kind": "agent", "attributes": {"tenant": "other"}}]})
	not d.allow
	d.reasons == [{"code": "actor_wrong_tenant", "message": "an actor belongs to another tenant"}]
}

test_chain_too_long_denied if {
	actor := {"id": "a", "kind": "agent", "attributes": {"tenant": "acme"}}
	d := decision with input as object.union(base, {"actors": [actor, actor, actor, actor]})
	not d.allow
	codes(d) == ["chain_too_long"]
	d.obligations == [{"type": "audit_chain"}]
}

test_chain_limit_from_data if {
	d := decision with input as base with data.limits.max_chain as 0
	codes(d) == ["chain_too_long"]
}

test_audience_mismatch_denied if {
	d := decision with input as object.union(base, {"token": {"aud": ["https://invoices"]}})
	not d.allow
	d.reasons == [{"code": "audience_mismatch", "message": "the token is not for this resource server"}]
}

test_authorization_details_narrow if {
	details := [{"type": "order", "actions": ["orders.read"], "locations": ["https://eu.orders"]}]
	d := decision with input as object.union(base, {"token": {"authorization_details": details}})
	not d.allow
	d.reasons == [{"code": "authorization_details_mismatch", "message": "no authorization detail covers the request"}]
}

test_authorization_detail_covers if {
	details := [
		{"type": "invoice", "actions": ["orders.read"]},
		{"type": "order", "actions": ["orders.read"], "locations": ["https://eu.orders"]},
	]
	d := decision with input as object.union(base, {
		"token": {"authorization_details": details},
		"resource": {"attributes": {"location": "https://eu.orders"}},
	})
	d.allow
}

test_clearance_insufficient_denied if {
	d := decision with input as object.union(base, {"resource": {"attributes": {"classification": 3}}})
	not d.allow
	d.reasons == [{"code": "clearance_insufficient", "message": "the resource is classified above the subject's clearance"}]
}

test_reasons_sorted_by_code if {
	d := decision with input as object.union(base, {"action": "orders.delete", "context": {"time": 3000}, "token": {"aud": []}})
	codes(d) == ["audience_mismatch", "mandate_expired", "scope_missing"]
}

test_step_up_for_classified if {
	d := decision with input as object.union(base, {
		"subject": {"attributes": {"clearance": 5, "amr": ["pwd"]}},
		"resource": {"attributes": {"classification": 4}},
	})
	d.allow
	d.obligations == [{"type": "step_up", "acr_values": "urn:mandate:acr:mfa"}]
}

test_no_step_up_with_mfa if {
	d := decision with input as object.union(base, {
		"subject": {"attributes": {"clearance": 5, "amr": ["pwd", "mfa"]}},
		"resource": {"attributes": {"classification": 4}},
	})
	d.obligations == []
}

test_step_up_acr_from_data if {
	request := object.union(base, {"subject": {"attributes": {"clearance": 5, "amr": ["pwd"]}}, "resource": {"attributes": {"classification": 3}}})
	d := decision with input as request with data.step_up.acr_values as "urn:example:acr:phr"
	d.obligations == [{"type": "step_up", "acr_values": "urn:example:acr:phr"}]
}

test_obligations_step_up_before_audit_chain if {
	actor := {"id": "a", "kind": "agent", "attributes": {"tenant": "acme"}}
	d := decision with input as object.union(base, {
		"actors": [actor, actor],
		"subject": {"attributes": {"clearance": 5, "amr": []}},
		"resource": {"attributes": {"classification": 3}},
	})
	d.allow
	d.obligations == [{"type": "step_up", "acr_values": "urn:mandate:acr:mfa"}, {"type": "audit_chain"}]
}

issuance_input := {
	"version": 1,
	"tenant": "acme",
	"subject": {"id": "partner-agent", "kind": "agent", "attributes": {}},
	"actors": [{"id": "bob", "kind": "agent", "attributes": {"iss": "https://mandate/t/initech"}}],
	"client": {"id": "partner-agent", "kind": "service", "attributes": {}},
	"action": "token.federated",
	"resource": {"type": "scope", "id": "orders.read", "attributes": {}},
	"token": {
		"scopes": ["orders.read"], "aud": [],
		"authorization_details": [{"type": "payment", "actions": ["initiate"]}],
		"foreign_tenant": "initech",
	},
	"context": {"time": 1000, "phase": "issuance"},
}

test_issuance_allowed_within_the_trust if {
	d := decision with input as issuance_input
	d.allow
	d.reasons == []
}

test_issuance_keeps_the_chain_rules if {
	long := [{"id": sprintf("a%d", [i]), "kind": "agent", "attributes": {}} | some i in numbers.range(1, 4)]
	d := decision with input as object.union(issuance_input, {"actors": long})
	codes(d) == ["chain_too_long"]
}

# The issuance rule is for Issue's question only: the action without the phase is an ordinary one.
test_token_federated_action_outside_issuance_needs_its_scope if {
	d := decision with input as object.union(issuance_input, {"context": {"phase": "use"}})
	not d.allow
	"scope_missing" in codes(d)
}
