package mandate.authz

import rego.v1

rick := "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

morty := "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

summer := "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

beth := "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

jerry := "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

# The decision input Mandate's AuthZEN edge makes of an interop request.
evaluation(req) := {
	"version": 1,
	"tenant": "todo",
	"subject": {"id": req.subject.id, "type": req.subject.type, "kind": "human", "attributes": object.get(req.subject, "properties", {})},
	"actors": [],
	"action": req.action.name,
	"action_attributes": object.get(req.action, "properties", {}),
	"resource": {"type": req.resource.type, "id": req.resource.id, "attributes": object.get(req.resource, "properties", {})},
	"token": {"scopes": [], "aud": [], "authorization_details": []},
	"context": {"time": 1700000000000},
	"authzen": req,
}

evaluate(subject_id, action, resource) := d if {
	req := {"subject": {"type": "user", "id": subject_id}, "action": {"name": action}, "resource": resource}
	d := decision with input as evaluation(req)
}

allowed(subject_id, action, resource) if evaluate(subject_id, action, resource).allow

user_resource(email) := {"type": "user", "id": email}

todos := {"type": "todo", "id": "todo-1"}

todo_of(email) := {"type": "todo", "id": "7240d0db-8ff0-41ec-98b2-34a096273b9f", "properties": {"ownerID": email}}

codes(d) := [r.code | some r in d.reasons]

# Every user can read users and todos

test_everyone_reads_users_and_todos if {
	every id in [rick, morty, summer, beth, jerry] {
		allowed(id, "can_read_user", user_resource("beth@the-smiths.com"))
		allowed(id, "can_read_user", user_resource("rick@the-citadel.com"))
		allowed(id, "can_read_todos", todos)
	}
}

# Rick Sanchez: admin, evil_genius

test_rick_creates if allowed(rick, "can_create_todo", todos)

test_rick_updates_own_and_others if {
	allowed(rick, "can_update_todo", todo_of("rick@the-citadel.com"))
	allowed(rick, "can_update_todo", todo_of("morty@the-citadel.com"))
}

test_rick_deletes_own_and_others if {
	allowed(rick, "can_delete_todo", todo_of("rick@the-citadel.com"))
	allowed(rick, "can_delete_todo", todo_of("morty@the-citadel.com"))
}

# Morty Smith and Summer Smith: editors

test_editors_create if {
	allowed(morty, "can_create_todo", todos)
	allowed(summer, "can_create_todo", todos)
}

test_editors_update_own_todos if {
	allowed(morty, "can_update_todo", todo_of("morty@the-citadel.com"))
	allowed(summer, "can_update_todo", todo_of("summer@the-smiths.com"))
}

test_editors_delete_own_todos if {
	allowed(morty, "can_delete_todo", todo_of("morty@the-citadel.com"))
	allowed(summer, "can_delete_todo", todo_of("summer@the-smiths.com"))
}

test_editor_may_not_update_others_todo if {
	d := evaluate(morty, "can_update_todo", todo_of("rick@the-citadel.com"))
	not d.allow
	d.reasons == [{"code": "not_owner", "message": "Morty Smith may can_update_todo only on their own todos"}]
	not allowed(summer, "can_update_todo", todo_of("morty@the-citadel.com"))
}

test_editor_may_not_delete_others_todo if {
	d := evaluate(summer, "can_delete_todo", todo_of("rick@the-citadel.com"))
	not d.allow
	codes(d) == ["not_owner"]
	not allowed(morty, "can_delete_todo", todo_of("summer@the-smiths.com"))
}

test_editor_todo_without_owner if {
	d := evaluate(morty, "can_update_todo", {"type": "todo", "id": "t-2"})
	codes(d) == ["not_owner"]
}

# Beth Smith and Jerry Smith: viewers

test_viewers_may_not_create if {
	d := evaluate(beth, "can_create_todo", todos)
	not d.allow
	d.reasons == [{"code": "role_missing", "message": "no role of Beth Smith grants can_create_todo"}]
	not allowed(jerry, "can_create_todo", todos)
}

test_viewers_may_not_update_even_their_own if {
	d := evaluate(beth, "can_update_todo", todo_of("beth@the-smiths.com"))
	codes(d) == ["role_missing"]
	not allowed(beth, "can_update_todo", todo_of("rick@the-citadel.com"))
	not allowed(jerry, "can_update_todo", todo_of("jerry@the-smiths.com"))
}

test_viewers_may_not_delete_even_their_own if {
	not allowed(beth, "can_delete_todo", todo_of("beth@the-smiths.com"))
	not allowed(jerry, "can_delete_todo", todo_of("jerry@the-smiths.com"))
	not allowed(jerry, "can_delete_todo", todo_of("rick@the-citadel.com"))
}

# The whole matrix: role × action, on one's own todo and on someone else's

matrix := {
	rick: {"email": "rick@the-citadel.com", "create": true, "update_own": true, "update_other": true, "delete_own": true, "delete_other": true},
	morty: {"email": "morty@the-citadel.com", "create": true, "update_own": true, "update_other": false, "delete_own": true, "delete_other": false},
	summer: {"email": "summer@the-smiths.com", "create": true, "update_own": true, "update_other": false, "delete_own": true, "delete_other": false},
	beth: {"email": "beth@the-smiths.com", "create": false, "update_own": false, "update_other": false, "delete_own": false, "delete_other": false},
	jerry: {"email": "jerry@the-smiths.com", "create": false, "update_own": false, "update_other": false, "delete_own": false, "delete_other": false},
}

other_than(email) := "someone@else.example" if email != "someone@else.example"

test_the_matrix if {
	every id, row in matrix {
		evaluate(id, "can_read_user", user_resource(row.email)).allow == true
		evaluate(id, "can_read_todos", todos).allow == true
		evaluate(id, "can_create_todo", todos).allow == row.create
		evaluate(id, "can_update_todo", todo_of(row.email)).allow == row.update_own
		evaluate(id, "can_update_todo", todo_of(other_than(row.email))).allow == row.update_other
		evaluate(id, "can_delete_todo", todo_of(row.email)).allow == row.delete_own
		evaluate(id, "can_delete_todo", todo_of(other_than(row.email))).allow == row.delete_other
	}
}

# Identification variants

test_subject_by_email_as_older_payloads if {
	allowed("morty@the-citadel.com", "can_update_todo", todo_of("morty@the-citadel.com"))
	not allowed("morty@the-citadel.com", "can_update_todo", todo_of("rick@the-citadel.com"))
}

test_owner_by_user_id if {
	allowed(morty, "can_delete_todo", todo_of(morty))
	not allowed(morty, "can_delete_todo", todo_of(summer))
}

test_owner_outside_properties_as_older_payloads if {
	req := {
		"subject": {"type": "user", "id": morty},
		"action": {"name": "can_update_todo"},
		"resource": {"type": "todo", "id": "t-1", "ownerID": "morty@the-citadel.com"},
	}
	decision.allow with input as evaluation(req)
}

# Negative cases

test_unknown_user if {
	d := evaluate("CiRmZDk5", "can_read_todos", todos)
	not d.allow
	d.reasons == [{"code": "user_unknown", "message": "the subject is not a user of the todo app"}]
}

test_unknown_action if {
	d := evaluate(rick, "can_launch_portal", todos)
	not d.allow
	d.reasons == [{"code": "action_unknown", "message": "can_launch_portal is not a todo app permission"}]
}

test_resource_type_mismatch if {
	d := evaluate(rick, "can_read_user", todos)
	not d.allow
	d.reasons == [{"code": "resource_type_mismatch", "message": "can_read_user is about a resource of type user"}]
	not allowed(rick, "can_delete_todo", {"type": "user", "id": "rick@the-citadel.com", "properties": {"ownerID": "rick@the-citadel.com"}})
}

# Search candidates

test_subject_search_who_can_create if {
	can_create := {c.id |
		some c in data.mandate.search.subjects
		allowed(c.id, "can_create_todo", todos)
	}
	can_create == {rick, morty, summer}
}

test_action_search_for_morty_on_his_todo if {
	actions := {c.name |
		some c in data.mandate.search.actions
		c.name != "can_read_user"
		allowed(morty, c.name, todo_of("morty@the-citadel.com"))
	}
	actions == {"can_read_todos", "can_create_todo", "can_update_todo", "can_delete_todo"}
}
