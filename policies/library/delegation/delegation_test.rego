package mandate.authz

import rego.v1

agent(id, tenant) := {"id": id, "kind": "agent", "attributes": {"tenant": tenant}}

the_mandate := {
	"id": "m-1",
	"tenant": "acme",
	"state": "active",
	"principal": {"id": "alice", "kind": "human"},
	"agent": {"id": "agent:shopper", "kind": "agent"},
	"scopes": ["orders.*", "payments.create"],
	"resources": ["https://orders.acme", "https://pay.acme"],
	"authorization_details": [],
	"expires_at": 2000,
	"uses_remaining": 3,
	"max_delegation_depth": 1,
}

base := {
	"version": 1,
	"tenant": "acme",
	"subject": {"id": "alice", "kind": "human", "attributes": {}},
	"actors": [agent("agent:shopper", "acme")],
	"action": "orders.read",
	"resource": {"type": "order", "id": "o-1", "attributes": {"audience": "https://orders.acme"}},
	"token": {"scopes": ["orders.read"], "aud": ["https://orders.acme"], "authorization_details": [], "mandate_id": "m-1"},
	"mandate": the_mandate,
	"context": {"time": 1000},
}

with_mandate(fields) := object.union(base, {"mandate": fields})

codes(d) := [r.code | some r in d.reasons]

payment_detail := {
	"type": "payment_initiation",
	"actions": ["payments.create"],
	"max_amount": 100,
	"currency": "EUR",
	"locations": ["https://pay.acme"],
}

payment(attributes) := object.union(base, {
	"action": "payments.create",
	"resource": {"type": "payment_initiation", "id": "p-1", "attributes": object.union(
		{"audience": "https://pay.acme", "amount": 40, "currency": "EUR", "location": "https://pay.acme"},
		attributes,
	)},
	"mandate": {"authorization_details": [payment_detail]},
})

# Allowed

test_mandated_request_allowed if {
	d := decision with input as base
	d == {"allow": true, "reasons": [], "obligations": []}
}

test_agent_and_principal_as_plain_ids if {
	decision.allow with input as with_mandate({"principal": "alice", "agent": "agent:shopper"})
}

# The mandate and the token

test_no_mandate if {
	d := decision with input as object.remove(base, ["mandate"])
	not d.allow
	d.reasons == [{"code": "mandate_missing", "message": "no mandate applies to this request"}]
}

test_empty_mandate_object if {
	d := decision with input as base with input.mandate as {}
	not d.allow
	codes(d) == ["mandate_missing"]
}

test_token_of_another_mandate if {
	d := decision with input as object.union(base, {"token": {"mandate_id": "m-2"}})
	not d.allow
	codes(d) == ["token_mandate_mismatch"]
}

test_token_without_mandate_id if {
	d := decision with input as base with input.token as {"scopes": ["orders.read"]}
	codes(d) == ["token_mandate_mismatch"]
}

test_mandate_of_another_tenant if {
	d := decision with input as with_mandate({"tenant": "globex"})
	codes(d) == ["mandate_wrong_tenant"]
}

test_revoked_mandate if {
	d := decision with input as with_mandate({"state": "revoked"})
	not d.allow
	d.reasons == [{"code": "mandate_inactive", "message": "the mandate is revoked"}]
}

# Who

test_no_acting_agent if {
	d := decision with input as base with input.actors as []
	not d.allow
	codes(d) == ["agent_missing"]
}

test_another_agent_acting if {
	d := decision with input as object.union(base, {"actors": [agent("agent:other", "acme")]})
	not d.allow
	d.reasons == [{"code": "agent_not_mandated", "message": "the acting agent agent:other is not the mandate's agent"}]
}

test_acting_agent_is_the_newest_actor if {
	# The mandate's agent sub-delegated to another agent: the newest actor must hold the mandate.
	d := decision with input as object.union(base, {"actors": [agent("agent:helper", "acme"), agent("agent:shopper", "acme")]})
	codes(d) == ["agent_not_mandated"]
}

test_another_principal if {
	d := decision with input as object.union(base, {"subject": {"id": "bob"}})
	codes(d) == ["principal_mismatch"]
}

# When

test_expired_mandate if {
	d := decision with input as object.union(base, {"context": {"time": 2000}})
	not d.allow
	codes(d) == ["mandate_expired"]
}

test_not_yet_valid_mandate if {
	d := decision with input as with_mandate({"not_before": 1500})
	codes(d) == ["mandate_not_yet_valid"]
	decision.allow with input as with_mandate({"not_before": 1000})
}

test_exhausted_mandate if {
	d := decision with input as with_mandate({"uses_remaining": 0})
	not d.allow
	codes(d) == ["mandate_exhausted"]
	decision.allow with input as with_mandate({"uses_remaining": 1})
}

test_unlimited_uses if {
	decision.allow with input as base with input.mandate as object.remove(the_mandate, ["uses_remaining"])
}

test_time_missing if {
	d := decision with input as object.remove(base, ["context"])
	codes(d) == ["time_missing"]
}

# What: scopes

test_scope_family_covers if {
	decision.allow with input as object.union(base, {"action": "orders.cancel"})
}

test_action_outside_scopes if {
	d := decision with input as object.union(base, {"action": "users.delete"})
	not d.allow
	d.reasons == [{"code": "scope_not_mandated", "message": "the mandate's scopes do not cover users.delete"}]
}

test_family_scope_needs_the_dot if {
	d := decision with input as object.union(base, {"action": "ordersx.read"})
	codes(d) == ["scope_not_mandated"]
}

# What: resources (audiences)

test_resource_not_mandated if {
	d := decision with input as object.union(base, {"resource": {"attributes": {"audience": "https://hr.acme"}}})
	not d.allow
	codes(d) == ["resource_not_mandated"]
}

test_resource_without_audience if {
	d := decision with input as base with input.resource.attributes as {}
	codes(d) == ["resource_not_mandated"]
}

# What: RFC 9396 authorization details

test_payment_within_detail if {
	d := decision with input as payment({})
	d.allow
}

test_payment_at_the_maximum if {
	decision.allow with input as payment({"amount": 100})
}

test_payment_above_max_amount if {
	d := decision with input as payment({"amount": 100.01})
	not d.allow
	d.reasons == [{"code": "authorization_details_not_covered", "message": "no authorization detail of the mandate covers the request"}]
}

test_payment_without_amount_not_covered if {
	r := payment({})
	d := decision with input as r with input.resource.attributes as object.remove(r.resource.attributes, ["amount"])
	codes(d) == ["authorization_details_not_covered"]
}

test_payment_amount_not_a_number if {
	d := decision with input as payment({"amount": "40"})
	codes(d) == ["authorization_details_not_covered"]
}

test_payment_in_another_currency if {
	d := decision with input as payment({"currency": "USD"})
	codes(d) == ["authorization_details_not_covered"]
}

test_payment_at_another_location if {
	d := decision with input as payment({"location": "https://evil.example"})
	codes(d) == ["authorization_details_not_covered"]
}

test_detail_of_another_type if {
	r := payment({})
	d := decision with input as r with input.resource.type as "account_information"
	codes(d) == ["authorization_details_not_covered"]
}

test_detail_without_the_action if {
	r := payment({})
	d := decision with input as r with input.mandate.authorization_details as [object.union(payment_detail, {"actions": ["payments.read"]})]
	codes(d) == ["authorization_details_not_covered"]
}

test_detail_without_limits_covers_any_amount if {
	detail := {"type": "payment_initiation", "actions": ["payments.create"]}
	decision.allow with input as payment({"amount": 1000000, "currency": "JPY"}) with input.mandate.authorization_details as [detail]
}

test_any_detail_may_cover if {
	small := object.union(payment_detail, {"max_amount": 10})
	large := object.union(payment_detail, {"max_amount": 50})
	decision.allow with input as payment({}) with input.mandate.authorization_details as [small, large]
	not decision.allow with input as payment({"amount": 60}) with input.mandate.authorization_details as [small, large]
}

test_token_details_within_mandate if {
	token_detail := {"type": "payment_initiation", "actions": ["payments.create"], "max_amount": 50, "currency": "EUR", "locations": ["https://pay.acme"]}
	decision.allow with input as payment({}) with input.token.authorization_details as [token_detail]
}

test_token_details_exceeding_the_mandate if {
	over_amount := {"type": "payment_initiation", "actions": ["payments.create"], "max_amount": 500, "currency": "EUR", "locations": ["https://pay.acme"]}
	more_actions := {"type": "payment_initiation", "actions": ["payments.create", "payments.refund"], "max_amount": 50, "currency": "EUR", "locations": ["https://pay.acme"]}
	no_amount := {"type": "payment_initiation", "actions": ["payments.create"], "currency": "EUR", "locations": ["https://pay.acme"]}
	other_currency := {"type": "payment_initiation", "actions": ["payments.create"], "max_amount": 5, "currency": "USD", "locations": ["https://pay.acme"]}
	more_locations := {"type": "payment_initiation", "actions": ["payments.create"], "max_amount": 5, "currency": "EUR", "locations": ["https://pay.acme", "https://x"]}
	no_locations := {"type": "payment_initiation", "actions": ["payments.create"], "max_amount": 5, "currency": "EUR"}
	every token_detail in [over_amount, more_actions, no_amount, other_currency, more_locations, no_locations] {
		d := decision with input as payment({}) with input.token.authorization_details as [token_detail]
		d.reasons == [{"code": "token_details_exceed_mandate", "message": "the token's authorization detail 0 is not within the mandate's"}]
	}
}

# Through whom

test_one_sub_delegation_within_depth if {
	d := decision with input as object.union(base, {"actors": [agent("agent:shopper", "acme"), agent("agent:planner", "acme")]})
	d.allow
	d.obligations == [{"type": "audit_chain", "mandate_id": "m-1", "depth": 1}]
}

test_chain_deeper_than_mandated if {
	actors := [agent("agent:shopper", "acme"), agent("agent:planner", "acme"), agent("agent:root", "acme")]
	d := decision with input as object.union(base, {"actors": actors})
	not d.allow
	d.reasons == [{"code": "delegation_too_deep", "message": "2 sub-delegations, the mandate allows 1"}]
}

test_no_sub_delegation_by_default if {
	m := object.remove(the_mandate, ["max_delegation_depth"])
	d := decision with input as object.union(base, {"actors": [agent("agent:shopper", "acme"), agent("agent:planner", "acme")]}) with input.mandate as m
	codes(d) == ["delegation_too_deep"]
}

test_federated_actor_trusted if {
	d := decision with input as object.union(base, {"actors": [agent("agent:shopper", "partner-eu")]})
	d.allow
}

test_foreign_actor_untrusted if {
	d := decision with input as object.union(base, {"actors": [agent("agent:shopper", "globex")]})
	not d.allow
	d.reasons == [{"code": "actor_untrusted_tenant", "message": "actor agent:shopper belongs to globex, which is neither acme nor a trusted federated tenant"}]
}

test_untrusted_actor_deeper_in_the_chain if {
	d := decision with input as object.union(base, {"actors": [agent("agent:shopper", "acme"), agent("agent:planner", "globex")]})
	codes(d) == ["actor_untrusted_tenant"]
}

test_actor_without_tenant_untrusted if {
	d := decision with input as object.union(base, {"actors": [{"id": "agent:shopper", "kind": "agent", "attributes": {}}]})
	d.reasons == [{"code": "actor_untrusted_tenant", "message": "actor agent:shopper belongs to no tenant, which is neither acme nor a trusted federated tenant"}]
}

test_federation_from_other_data if {
	r := object.union(base, {"actors": [agent("agent:shopper", "globex")]})
	decision.allow with input as r with data.federation.trusted_tenants as ["globex"]
	not decision.allow with input as r with data.federation as {}
}

# Several reasons at once, sorted by code

test_reasons_accumulate if {
	r := object.union(base, {"action": "users.delete", "context": {"time": 5000}, "token": {"mandate_id": "m-9"}})
	d := decision with input as r
	codes(d) == ["mandate_expired", "scope_not_mandated", "token_mandate_mismatch"]
}

test_malformed_mandate_fields_deny if {
	m := object.union(the_mandate, {"scopes": "orders.*", "resources": "https://orders.acme", "authorization_details": "any"})
	d := decision with input as base with input.mandate as m
	not d.allow
	codes(d) == ["resource_not_mandated", "scope_not_mandated"]
}

test_malformed_actor_denies if {
	d := decision with input as base with input.actors as [{"id": "agent:shopper", "attributes": null}]
	not d.allow
	d.reasons == [{"code": "actor_untrusted_tenant", "message": "actor agent:shopper belongs to no tenant, which is neither acme nor a trusted federated tenant"}]
}

test_actor_without_id_still_denied if {
	d := decision with input as base with input.actors as [{"kind": "agent", "attributes": {"tenant": "globex"}}]
	not d.allow
	d.reasons == [
		{"code": "actor_untrusted_tenant", "message": "actor (without an id) belongs to globex, which is neither acme nor a trusted federated tenant"},
		{"code": "agent_not_mandated", "message": "the acting agent (without an id) is not the mandate's agent"},
	]
}
