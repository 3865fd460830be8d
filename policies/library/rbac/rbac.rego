# Role-based access control: roles grant permissions, a permission is an action pattern, and the
# subject's roles come from its identity traits and from role bindings kept in data, either global
# or scoped to one resource type or one resource.
#
# Input (docs/design/authorize.md, "The decision input"):
#   input.subject.id                     the subject role bindings name
#   input.subject.attributes.roles       roles from the identity's traits (strings), everywhere
#   input.subject.attributes.groups      groups from the identity's traits, for group bindings
#   input.action                         "orders.read"
#   input.resource.{type, id}            what resource-scoped bindings are matched against
# Data:
#   data.roles     {"<role>": ["<action pattern>", ...]}: "orders.read" is that action, "orders.*"
#                  every action under "orders.", "*" every action
#   data.bindings  [{"subject": "<subject id>" | "group": "<group>", "role": "<role>",
#                    "resource": {"type": "<type>", "id": "<id>"}}]: without "resource" the binding
#                  holds everywhere, with a type only for every resource of that type, with a type
#                  and an id for that resource only
#
# Reasons ({"code", "message"}), stable codes:
#   role_missing        the subject has no role here (no trait role, no binding that applies)
#   permission_missing  none of the subject's roles has a permission matching the action
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

allow if {
	count(deny) == 0
	count(granting_roles) > 0
}

# Roles from the identity's traits apply everywhere.
trait_roles contains role if {
	some role in as_list(input.subject.attributes.roles)
	is_string(role)
}

bound_roles contains binding.role if {
	some binding in as_list(data.bindings)
	is_string(binding.role)
	binds_subject(binding)
	covers_resource(binding)
}

binds_subject(binding) if binding.subject == input.subject.id

binds_subject(binding) if binding.group in as_list(input.subject.attributes.groups)

covers_resource(binding) if not binding.resource

covers_resource(binding) if {
	binding.resource.type == input.resource.type
	not binding.resource.id
}

covers_resource(binding) if {
	binding.resource.type == input.resource.type
	binding.resource.id == input.resource.id
}

roles := trait_roles | bound_roles

granting_roles contains role if {
	some role in roles
	some permission in as_list(data.roles[role])
	action_matches(permission, input.action)
}

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

deny contains reason("role_missing", "the subject has no role for this resource") if count(roles) == 0

deny contains reason("permission_missing", msg) if {
	count(roles) > 0
	count(granting_roles) == 0
	msg := sprintf("no role of the subject (%s) permits %s", [concat(", ", sort(roles)), shown(requested_action)])
}

default requested_action := null

requested_action := input.action

shown(x) := x if is_string(x)

shown(x) := json.marshal(x) if not is_string(x)

reason(code, message) := {"code": code, "message": message}

# A list, or [] for anything else (Mandate's compiler fails `some .. in` over a non-collection).
as_list(x) := x if is_array(x)

as_list(x) := [] if not is_array(x)
