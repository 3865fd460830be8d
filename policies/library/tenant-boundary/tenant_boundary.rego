# Tenant boundary: every party to a request (the subject, each actor of the delegation chain, the
# client) and the resource belong to the tenant deciding (input.tenant) — unless the resource's
# tenant trusts the other tenant in data, for every action or for some.
#
# Input (docs/design/authorize.md, "The decision input"):
#   input.tenant                          the tenant whose policy decides
#   input.subject.attributes.tenant       each party's tenant ...
#   input.actors[_].attributes.tenant
#   input.client.attributes.tenant        (no client: nothing to check)
#   input.resource.attributes.tenant      ... and the resource's
#   input.action                          for trust limited to some actions
# Data (data.tenant_boundary):
#   trusts  {"<resource tenant>": ["<tenant>", {"tenant": "<tenant>", "actions": ["<pattern>", ...]}]}
#           the resource tenant's resources may be used by parties of those tenants (a plain name:
#           for every action; an object: for the actions its patterns match — "x.read" is that
#           action, "x.*" every action under "x.", "*" every action), and a request deciding in
#           a trusted tenant may reach them.
#   A party of input.tenant or of the resource's tenant, and a resource of input.tenant, are always
#   in bounds; a party or resource without a tenant never is.
#
# Reasons ({"code", "message"}), stable codes (the message names the party):
#   resource_foreign_tenant  the resource belongs to a tenant that is not input.tenant and does not
#                            trust it
#   subject_foreign_tenant   the subject belongs to a tenant that is neither input.tenant, nor the
#                            resource's, nor trusted by the resource's for the action
#   actor_foreign_tenant     the same for an actor of the delegation chain
#   client_foreign_tenant    the same for the client
#   tenant_unknown           a party or the resource has no tenant attribute (or there is no subject)
# Obligations: none.
package mandate.authz

import rego.v1

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": sort(deny),
	"obligations": [],
}

default allow := false

allow if count(deny) == 0

reason(code, message) := {"code": code, "message": message}

default deciding_tenant := null

deciding_tenant := input.tenant

resource_tenant := input.resource.attributes.tenant

# Does the resource's tenant let parties of `tenant` in, for this action?
trusted(tenant) if tenant == input.tenant

trusted(tenant) if tenant == resource_tenant

trusted(tenant) if {
	some entry in as_list(data.tenant_boundary.trusts[resource_tenant])
	entry == tenant
}

trusted(tenant) if {
	some entry in as_list(data.tenant_boundary.trusts[resource_tenant])
	entry.tenant == tenant
	some pattern in as_list(entry.actions)
	action_matches(pattern, input.action)
}

# The resource

deny contains reason("tenant_unknown", "the resource has no tenant") if not is_string(resource_tenant)

deny contains reason("resource_foreign_tenant", msg) if {
	is_string(resource_tenant)
	resource_tenant != input.tenant
	not trusts_deciding_tenant
	msg := sprintf("the resource belongs to %s, which does not trust %s", [resource_tenant, shown(deciding_tenant)])
}

# The deciding tenant is trusted like a party of that tenant would be.
trusts_deciding_tenant if {
	some entry in as_list(data.tenant_boundary.trusts[resource_tenant])
	entry == input.tenant
}

trusts_deciding_tenant if {
	some entry in as_list(data.tenant_boundary.trusts[resource_tenant])
	entry.tenant == input.tenant
	some pattern in as_list(entry.actions)
	action_matches(pattern, input.action)
}

# The parties: [reason code, how the message names it, the party]
parties contains ["subject_foreign_tenant", label("the subject", input.subject), input.subject]

parties contains ["actor_foreign_tenant", label("actor", actor), actor] if some actor in as_list(input.actors)

parties contains ["client_foreign_tenant", label("the client", input.client), input.client]

label(what, party) := sprintf("%s %s", [what, party.id]) if is_string(party.id)

label(what, party) := what if not is_string(party.id)

deny contains reason("tenant_unknown", "the request has no subject") if not input.subject

deny contains reason("tenant_unknown", sprintf("%s has no tenant", [name])) if {
	some [_, name, party] in parties
	not is_string(party.attributes.tenant)
}

deny contains reason(code, msg) if {
	some [code, name, party] in parties
	tenant := party.attributes.tenant
	is_string(tenant)
	not trusted(tenant)
	msg := sprintf("%s belongs to %s, which is not %s and not trusted by the resource's tenant", [name, tenant, shown(deciding_tenant)])
}

# "x.read" matches itself, "x.*" every action under "x.", "*" every action.
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
