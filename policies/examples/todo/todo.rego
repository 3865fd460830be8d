# The OpenID AuthZEN interop "Todo" scenario (https://authzen-interop.net, see README.md): a shared
# todo list, five users from "Rick & Morty", four roles and five permissions.
#
#   viewer       can_read_user, can_read_todos
#   editor       viewer + can_create_todo, and can_update_todo / can_delete_todo on todos they own
#   admin        editor + can_delete_todo on any todo
#   evil_genius  editor + can_update_todo on any todo
#
# Input: the AuthZEN mapping of the decision input (docs/design/authorize.md):
#   input.subject.id                  the PEP's user id ("CiRmZDA2...") — or, as in older payloads,
#                                     the user's email
#   input.action                      can_read_user | can_read_todos | can_create_todo |
#                                     can_update_todo | can_delete_todo
#   input.resource.type               "user" for can_read_user, "todo" for the others
#   input.resource.attributes.ownerID the todo's owner: an email (or a user id); older payloads sent
#                                     it outside `properties`, read from input.authzen.resource
# Data:
#   data.todo.users        {"<user id>": {"name", "email", "roles"}}
#   data.todo.permissions  {"<role>": {"any": [actions on any resource], "own": [actions on own todos]}}
#   data.todo.resource_types  {"<action>": "<resource type>"}
#   data.mandate.search    Search candidates: the five users, the five actions
#
# Reasons ({"code", "message"}), stable codes:
#   user_unknown             the subject is not one of the users
#   action_unknown           not one of the five permissions
#   resource_type_mismatch   the resource's type is not the action's ("user" / "todo")
#   role_missing             none of the user's roles grants the action
#   not_owner                the user's roles grant the action on their own todos only, and the
#                            todo's ownerID is not theirs
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

reason(code, message) := {"code": code, "message": message}

# The user: by user id, or by email.
user_id := input.subject.id if data.todo.users[input.subject.id]

user_id := id if {
	not data.todo.users[input.subject.id]
	some id, u in data.todo.users
	u.email == input.subject.id
}

user := data.todo.users[user_id]

roles contains role if some role in user.roles

# The todo's owner: properties.ownerID, or ownerID beside type/id in an older raw request.
owner := input.resource.attributes.ownerID

owner := input.authzen.resource.ownerID if not input.resource.attributes.ownerID

owns if owner == user.email

owns if owner == user_id

granted_anywhere if {
	some role in roles
	input.action in data.todo.permissions[role].any
}

granted_on_own if {
	some role in roles
	input.action in data.todo.permissions[role].own
}

granted if granted_anywhere

granted if {
	granted_on_own
	owns
}

deny contains reason("user_unknown", "the subject is not a user of the todo app") if not user

deny contains reason("action_unknown", sprintf("%s is not a todo app permission", [shown(requested_action)])) if {
	not data.todo.resource_types[input.action]
}

deny contains reason("resource_type_mismatch", msg) if {
	expected := data.todo.resource_types[input.action]
	not input.resource.type == expected
	msg := sprintf("%s is about a resource of type %s", [input.action, expected])
}

user_name := object.get(user, "name", user_id)

deny contains reason("role_missing", sprintf("no role of %s grants %s", [user_name, input.action])) if {
	data.todo.resource_types[input.action]
	not granted_anywhere
	not granted_on_own
}

deny contains reason("not_owner", sprintf("%s may %s only on their own todos", [user_name, input.action])) if {
	not granted_anywhere
	granted_on_own
	not owns
}

default requested_action := null

requested_action := input.action

shown(x) := x if is_string(x)

shown(x) := json.marshal(x) if not is_string(x)
