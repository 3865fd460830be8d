# Mandate's default authorization policy: may this principal, acting through this chain of agents
# with this token (and the mandate behind it), perform this action on this resource?
# Input: the decision input of ARCHITECTURE.md ("The decision input").
package mandate.authz

import rego.v1

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": sort(deny),
	"obligations": sort(obligations),
}

default allow := false

allow if {
	count(deny) == 0
	action_in_scope
}

# A scope names an action ("orders.read") or a family of them ("orders.*").
action_in_scope if input.action in input.token.scopes

action_in_scope if {
	some scope in input.token.scopes
	endswith(scope, ".*")
	startswith(input.action, trim_suffix(scope, "*"))
}

default max_chain := 3

max_chain := data.limits.max_chain

deny contains "the action is outside the token's scopes" if not action_in_scope

deny contains "the delegation chain is too long" if count(input.actors) > max_chain

deny contains "an actor belongs to another tenant" if {
	some actor in input.actors
	actor.attributes.tenant != input.tenant
}

deny contains "the token is not for this resource server" if {
	not input.resource.attributes.audience in input.token.aud
}

# RFC 9396 authorization details narrow the scopes: when present, one must cover the request.
deny contains "no authorization detail covers the request" if {
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

deny contains "the mandate has expired" if input.mandate.expires_at <= input.context.time

deny contains "the mandate's uses are exhausted" if input.mandate.uses_remaining <= 0

deny contains "the resource is classified above the subject's clearance" if {
	input.resource.attributes.classification > object.get(input.subject.attributes, "clearance", 0)
}

obligations contains "step_up" if {
	input.resource.attributes.classification >= 3
	not "mfa" in object.get(input.subject.attributes, "amr", [])
}

obligations contains "audit_chain" if count(input.actors) > 1
