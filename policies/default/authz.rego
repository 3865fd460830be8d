# Mandate's default authorization policy: may this principal, acting through this chain of agents
# with this token (and the mandate behind it), perform this action on this resource?
# Input: the decision input of docs/design/authorize.md ("The decision input").
#
# Reasons ({"code", "message"}), stable codes:
#   scope_missing                   the action is neither one of the token's scopes nor under an `x.*` one
#   chain_too_long                  more actors than data.limits.max_chain (default 3)
#   actor_wrong_tenant              an actor's attributes.tenant is not input.tenant
#   audience_mismatch               resource.attributes.audience is not in the token's aud
#   authorization_details_mismatch  the token has RFC 9396 authorization details and none covers the request
#   mandate_expired                 mandate.expires_at <= context.time (both ms since epoch)
#   mandate_exhausted               mandate.uses_remaining <= 0
#   clearance_insufficient          resource classification above the subject's clearance (default 0)
# Issuance: before minting a federated token (issue 18), Issue asks once per scope it would grant:
# action "token.federated", resource {"type": "scope", "id": <scope>} ({"type": "token"} when it
# grants none), token = the token it would mint (scopes, aud, authorization_details,
# foreign_tenant), actors = the external identity's chain, context.phase = "issuance". The trust's
# bounds already hold, so here only the chain rules apply; a tenant narrows with deny rules of its own.
# Obligations, in this order:
#   {"type": "step_up", "acr_values": data.step_up.acr_values (default "urn:mandate:acr:mfa")}
#       classification >= 3 and the subject's amr lacks "mfa" (the decision may still allow)
#   {"type": "audit_chain"}         more than one actor
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
	action_in_scope
}

# A scope names an action ("orders.read") or a family of them ("orders.*").
action_in_scope if input.action in input.token.scopes

action_in_scope if issuance

issuance if {
	input.action == "token.federated"
	input.context.phase == "issuance"
}

action_in_scope if {
	some scope in input.token.scopes
	endswith(scope, ".*")
	startswith(input.action, trim_suffix(scope, "*"))
}

default max_chain := 3

max_chain := data.limits.max_chain

default step_up_acr := "urn:mandate:acr:mfa"

step_up_acr := data.step_up.acr_values

deny contains reason("scope_missing", "the action is outside the token's scopes") if not action_in_scope

deny contains reason("chain_too_long", "the delegation chain is too long") if count(input.actors) > max_chain

deny contains reason("actor_wrong_tenant", "an actor belongs to another tenant") if {
	some actor in input.actors
	actor.attributes.tenant != input.tenant
}

deny contains reason("audience_mismatch", "the token is not for this resource server") if {
	not issuance
	not input.resource.attributes.audience in input.token.aud
}

# RFC 9396 authorization details narrow the scopes: when present, one must cover the request.
deny contains reason("authorization_details_mismatch", "no authorization detail covers the request") if {
	not issuance
	count(input.token.authorization_details) > 0
	not detail_covers_request
}

detail_covers_request if {
	some detail in input.token.authorization_details
	detail.type == input.resource.type
	input.action in detail.actions
	location_allowed(detail)
}

location_allowed(detail) if not detail.locations

location_allowed(detail) if input.resource.attributes.location in detail.locations

deny contains reason("mandate_expired", "the mandate has expired") if input.mandate.expires_at <= input.context.time

deny contains reason("mandate_exhausted", "the mandate's uses are exhausted") if input.mandate.uses_remaining <= 0

deny contains reason("clearance_insufficient", "the resource is classified above the subject's clearance") if {
	input.resource.attributes.classification > object.get(input.subject.attributes, "clearance", 0)
}

reason(code, message) := {"code": code, "message": message}

# Listed in a fixed order (step_up, then audit_chain), each present or not.
obligations := array.concat([o | o := step_up], [o | o := audit_chain])

step_up := {"type": "step_up", "acr_values": step_up_acr} if {
	input.resource.attributes.classification >= 3
	not "mfa" in object.get(input.subject.attributes, "amr", [])
}

audit_chain := {"type": "audit_chain"} if count(input.actors) > 1
