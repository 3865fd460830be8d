# Attribute-based access control on the resource's attributes: its owner may do more than the members
# of its department, and nobody (not even the owner) reads above their clearance.
#
# Input (docs/design/authorize.md, "The decision input"):
#   input.subject.id                            compared with the resource's owner
#   input.subject.attributes.department         compared with the resource's department
#   input.subject.attributes.clearance          a level name ("confidential") or number; absent: 0
#   input.action                                "documents.read"
#   input.resource.attributes.owner             subject id of the owner
#   input.resource.attributes.department
#   input.resource.attributes.classification    a level name or number; absent: 0 (public)
# Data (data.abac):
#   levels              {"public": 0, "internal": 1, ...}: names of classification/clearance levels
#   owner_actions       action patterns the owner may perform ("documents.*")
#   department_actions  action patterns members of the resource's department may perform
#   Patterns: "x.read" is that action, "x.*" every action under "x.", "*" every action.
#
# Reasons ({"code", "message"}), stable codes:
#   clearance_insufficient  the resource's classification is above the subject's clearance (an unknown
#                           clearance name counts as 0)
#   classification_unknown  the resource's classification is a name data.abac.levels does not define
#   department_mismatch     a department action, and the subject is neither the owner (with the action
#                           among the owner's) nor in the resource's department
#   owner_required          an owner-only action and the subject is not the owner
#   action_not_covered      the action is neither an owner nor a department action
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
	granted
}

granted if {
	is_owner
	owner_action
}

granted if {
	same_department
	department_action
}

is_owner if input.resource.attributes.owner == input.subject.id

same_department if {
	is_string(input.resource.attributes.department)
	input.resource.attributes.department == input.subject.attributes.department
}

owner_action if {
	some pattern in as_list(data.abac.owner_actions)
	action_matches(pattern, input.action)
}

department_action if {
	some pattern in as_list(data.abac.department_actions)
	action_matches(pattern, input.action)
}

deny contains reason("department_mismatch", msg) if {
	not granted
	department_action
	msg := sprintf("%s is for members of the resource's department (or its owner)", [shown(input.action)])
}

deny contains reason("owner_required", msg) if {
	not granted
	not department_action
	owner_action
	msg := sprintf("only the resource's owner may %s", [shown(input.action)])
}

deny contains reason("action_not_covered", msg) if {
	not owner_action
	not department_action
	msg := sprintf("no attribute rule covers %s", [shown(requested_action)])
}

# Levels: a number is itself, a name is looked up in data.abac.levels.

default classification := 0

classification := level(input.resource.attributes.classification)

default clearance := 0

clearance := level(input.subject.attributes.clearance)

level(x) := x if is_number(x)

level(x) := data.abac.levels[x] if is_string(x)

deny contains reason("classification_unknown", msg) if {
	c := input.resource.attributes.classification
	not level(c)
	msg := sprintf("the resource's classification %s is not a known level", [shown(c)])
}

deny contains reason("clearance_insufficient", msg) if {
	classification > clearance
	msg := sprintf("the resource is classified %v, above the subject's clearance %v", [classification, clearance])
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

reason(code, message) := {"code": code, "message": message}

default requested_action := null

requested_action := input.action

shown(x) := x if is_string(x)

shown(x) := json.marshal(x) if not is_string(x)

# A list, or [] for anything else (Mandate's compiler fails `some .. in` over a non-collection).
as_list(x) := x if is_array(x)

as_list(x) := [] if not is_array(x)
