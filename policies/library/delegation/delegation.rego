# Delegation-aware authorization: an agent acts for a principal only within a mandate the principal
# granted it. The acting agent (input.actors[0], the newest actor) must hold the mandate the token
# was issued under, and the mandate must cover the action (its scopes), the resource (its resources,
# i.e. audiences) and, when it carries RFC 9396 authorization details, the request's type, action,
# amount, currency and location. The chain may not be deeper than the mandate allows, every actor
# must be of the tenant or of a federated tenant trusted in data, and an expired, not yet valid,
# inactive or used-up mandate allows nothing.
#
# Input (docs/design/authorize.md, "The decision input"):
#   input.tenant, input.subject.id (the principal), input.actors (newest first; attributes.tenant)
#   input.action, input.resource.{type, attributes.{audience, amount, currency, location}}
#   input.token.{mandate_id, authorization_details}
#   input.mandate: {id, principal, agent (an id or a party {"id", ...}), scopes, resources,
#     authorization_details, expires_at, not_before (ms since epoch, as context.time; optional),
#     uses_remaining (optional: unlimited), max_delegation_depth (absent: 0), state, tenant (optional)}
#   input.context.time (ms since epoch)
# Data:
#   data.federation.trusted_tenants  tenants whose agents may act here besides input.tenant
#
# Coverage rules:
#   scopes          "orders.read" is that action, "orders.*" every action under "orders.", "*" all
#   resources       the resource's attributes.audience must be one of them
#   authorization details (when the mandate has any, one must cover the request):
#     type          == input.resource.type
#     actions       the requested action is one of the detail's actions ({action} ⊆ actions)
#     max_amount    when set, input.resource.attributes.amount must be a number <= max_amount
#                   (a request that states no amount is not covered)
#     currency      when set, == input.resource.attributes.currency
#     locations     when set, input.resource.attributes.location is one of them
#   and every authorization detail of the token must lie within one of the mandate's: same type,
#   actions ⊆, max_amount <= (required when the mandate's has one), same currency, locations ⊆.
#   depth           count(input.actors) - 1 (sub-delegation hops) <= max_delegation_depth
#
# Reasons ({"code", "message"}), stable codes:
#   mandate_missing                    no input.mandate (with an id)
#   token_mandate_mismatch             input.token.mandate_id is not the mandate's id
#   agent_missing                      no actor: nobody acts under the mandate
#   agent_not_mandated                 input.actors[0] is not the mandate's agent
#   principal_mismatch                 input.subject.id is not the mandate's principal
#   mandate_wrong_tenant               the mandate names another tenant
#   mandate_inactive                   the mandate has a state other than "active"
#   mandate_expired                    expires_at <= context.time
#   mandate_not_yet_valid              not_before > context.time
#   mandate_exhausted                  uses_remaining <= 0
#   time_missing                       the mandate has a time bound and context.time is not a number
#   scope_not_mandated                 no mandate scope matches the action
#   resource_not_mandated              the resource's audience is not among the mandate's resources
#   authorization_details_not_covered  no mandate authorization detail covers the request
#   token_details_exceed_mandate       a token authorization detail is not within the mandate's
#   delegation_too_deep                more sub-delegation hops than max_delegation_depth
#   actor_untrusted_tenant             an actor of a tenant that is neither input.tenant nor trusted
#                                      (or of no tenant)
# Obligations:
#   {"type": "audit_chain", "mandate_id": <id>, "depth": <hops>}  when the chain has sub-delegations
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

allow if {
	count(deny) == 0
	has_mandate
}

has_mandate if is_string(input.mandate.id)

mandate := input.mandate if has_mandate

reason(code, message) := {"code": code, "message": message}

# The mandate and the token

deny contains reason("mandate_missing", "no mandate applies to this request") if not has_mandate

deny contains reason("token_mandate_mismatch", "the token was not issued under this mandate") if {
	has_mandate
	not input.token.mandate_id == mandate.id
}

deny contains reason("mandate_wrong_tenant", "the mandate belongs to another tenant") if {
	mandate.tenant != input.tenant
}

deny contains reason("mandate_inactive", sprintf("the mandate is %s", [shown(mandate.state)])) if {
	mandate.state != "active"
}

# Who: the principal and the acting agent

party_id(p) := p if is_string(p)

party_id(p) := p.id if is_object(p)

deny contains reason("agent_missing", "no agent acts under the mandate") if {
	has_mandate
	count(object.get(input, "actors", [])) == 0
}

deny contains reason("agent_not_mandated", msg) if {
	has_mandate
	acting := input.actors[0]
	not acting.id == party_id(mandate.agent)
	msg := sprintf("the acting agent %s is not the mandate's agent", [id_of(acting)])
}

deny contains reason("principal_mismatch", "the subject is not the mandate's principal") if {
	has_mandate
	not input.subject.id == party_id(mandate.principal)
}

# When: expiry, validity start, uses

time_bound if mandate.expires_at
time_bound if mandate.not_before

deny contains reason("time_missing", "the request has no time to check the mandate's validity against") if {
	time_bound
	not is_number(input.context.time)
}

deny contains reason("mandate_expired", "the mandate has expired") if mandate.expires_at <= input.context.time

deny contains reason("mandate_not_yet_valid", "the mandate is not valid yet") if mandate.not_before > input.context.time

deny contains reason("mandate_exhausted", "the mandate's uses are exhausted") if mandate.uses_remaining <= 0

# What: scopes, resources (audiences), authorization details

deny contains reason("scope_not_mandated", msg) if {
	has_mandate
	not scope_covers
	msg := sprintf("the mandate's scopes do not cover %s", [shown(requested_action)])
}

scope_covers if {
	some scope in as_list(mandate.scopes)
	action_matches(scope, input.action)
}

deny contains reason("resource_not_mandated", "the resource is not among the mandate's resources") if {
	has_mandate
	not input.resource.attributes.audience in as_list(mandate.resources)
}

deny contains reason("authorization_details_not_covered", "no authorization detail of the mandate covers the request") if {
	count(as_list(mandate.authorization_details)) > 0
	not request_within_mandate_detail
}

request_within_mandate_detail if {
	some detail in as_list(mandate.authorization_details)
	is_object(detail)
	detail.type == input.resource.type
	input.action in detail.actions
	amount_within(detail)
	currency_matches(detail)
	location_within(detail)
}

amount_within(detail) if not "max_amount" in object.keys(detail)

amount_within(detail) if {
	is_number(input.resource.attributes.amount)
	is_number(detail.max_amount)
	input.resource.attributes.amount <= detail.max_amount
}

currency_matches(detail) if not "currency" in object.keys(detail)

currency_matches(detail) if input.resource.attributes.currency == detail.currency

location_within(detail) if not "locations" in object.keys(detail)

location_within(detail) if input.resource.attributes.location in detail.locations

deny contains reason("token_details_exceed_mandate", msg) if {
	has_mandate
	some i, token_detail in as_list(input.token.authorization_details)
	not detail_within_mandate(token_detail)
	msg := sprintf("the token's authorization detail %d is not within the mandate's", [i])
}

detail_within_mandate(token_detail) if {
	is_object(token_detail)
	some detail in as_list(mandate.authorization_details)
	is_object(detail)
	token_detail.type == detail.type
	every action in as_list(token_detail.actions) {
		action in detail.actions
	}
	max_within(token_detail, detail)
	same_currency(token_detail, detail)
	locations_within(token_detail, detail)
}

max_within(_, detail) if not "max_amount" in object.keys(detail)

max_within(token_detail, detail) if {
	is_number(token_detail.max_amount)
	is_number(detail.max_amount)
	token_detail.max_amount <= detail.max_amount
}

same_currency(_, detail) if not "currency" in object.keys(detail)

same_currency(token_detail, detail) if token_detail.currency == detail.currency

locations_within(_, detail) if not "locations" in object.keys(detail)

locations_within(token_detail, detail) if {
	is_array(token_detail.locations)
	every location in token_detail.locations {
		location in detail.locations
	}
}

# Through whom: the depth of the chain and the actors' tenants

default max_depth := 0

max_depth := mandate.max_delegation_depth if is_number(mandate.max_delegation_depth)

depth := count(input.actors) - 1

deny contains reason("delegation_too_deep", msg) if {
	has_mandate
	depth > max_depth
	msg := sprintf("%d sub-delegations, the mandate allows %v", [depth, max_depth])
}

default trusted_tenants := []

trusted_tenants := data.federation.trusted_tenants

tenant_trusted(tenant) if tenant == input.tenant

tenant_trusted(tenant) if tenant in trusted_tenants

deny contains reason("actor_untrusted_tenant", msg) if {
	some actor in as_list(input.actors)
	not tenant_trusted(actor.attributes.tenant)
	msg := sprintf("actor %s belongs to %s, which is neither %s nor a trusted federated tenant", [
		id_of(actor),
		tenant_of(actor),
		shown(deciding_tenant),
	])
}

# Message parts, defined for any actor (a reason must never lose its message).
id_of(actor) := shown(actor.id) if actor.id

id_of(actor) := "(without an id)" if not actor.id

tenant_of(actor) := shown(actor.attributes.tenant) if actor.attributes.tenant

tenant_of(actor) := "no tenant" if not actor.attributes.tenant

# Obligations

obligations := [o | o := audit_chain]

audit_chain := {"type": "audit_chain", "mandate_id": mandate.id, "depth": depth} if depth > 0

# Helpers

# "orders.read" matches itself, "orders.*" every action under "orders.", "*" every action.
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

default deciding_tenant := null

deciding_tenant := input.tenant

default requested_action := null

requested_action := input.action

shown(x) := x if is_string(x)

shown(x) := json.marshal(x) if not is_string(x)

# A list, or [] for anything else (Mandate's compiler fails `some .. in` over a non-collection).
as_list(x) := x if is_array(x)

as_list(x) := [] if not is_array(x)
