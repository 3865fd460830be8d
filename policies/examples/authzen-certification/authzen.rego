# The fixture policy of the OpenID AuthZEN Authorization API 1.0 certification scenario
# (authorization-api-1_0-scenario, section C.1): subjects alice and bob (role admin), records
# record-1 (active) and record-2 (archived), actions read, write and delete (with `soft`).
#
# It decides the eight fixture decisions of C.1.4 exactly:
#   1. alice read record-1          true      5. alice write an archived record             false
#   2. alice write record-1         true      6. a subject with role admin writes archived  true
#   3. bob read record-1            true      7. alice delete record-1, soft: true          true
#   4. bob write record-1           false     8. alice delete record-1, soft: false         false
# with this reading of them:
#   read    any known user may read any known record
#   write   users write live (non-archived) records; admins write archived records only (rule 4:
#           bob, an admin, may not write the live record-1; rule 6: an admin may write an archived
#           one)
#   delete  soft deletes only (`soft` absent counts as a hard delete)
# Properties sent in the request win over the fixture's (C.1.6: rules 5-8 are decided on the
# request's properties); without them the fixture's apply, so bob is an admin and record-2 archived
# also when the harness sends identifiers only (as Search does for its candidates). A user is known
# when the fixture lists them or the request gives them a `role` property (rule 6 speaks of "a
# subject with properties.role = admin"); a record when the fixture lists it or the request gives it
# a `status` property (rule 5). The request's context never matters (C.1.6).
#
# Input: the AuthZEN mapping of the decision input (docs/design/authorize.md):
#   input.subject.{type, id, attributes (= properties)}, input.action (= action.name),
#   input.action_attributes (= action.properties), input.resource.{type, id, attributes},
#   input.context; input.authzen is the raw request (used for action properties if unmapped).
# Data:
#   data.fixture                 the fixture's entities and their properties
#   data.mandate.search          Search candidates (subjects, resources, actions): the Search APIs
#                                evaluate this decision for each and return those allowed (S1-S6)
#
# Reasons ({"code", "message"}), stable codes:
#   subject_unknown          not a user of the fixture (nor one with a role property)
#   resource_unknown         not a record of the fixture (nor one with a status property)
#   action_unknown           not one of the fixture's actions (read, write, delete)
#   record_archived          a non-admin writes an archived record
#   admin_write_live_record  an admin writes a live record
#   hard_delete_denied       delete without soft: true
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
	permitted
}

reason(code, message) := {"code": code, "message": message}

# Entities: the request's properties, else the fixture's.

default subject_properties := {}

subject_properties := input.subject.attributes if is_object(input.subject.attributes)

default resource_properties := {}

resource_properties := input.resource.attributes if is_object(input.resource.attributes)

default action_properties := {}

action_properties := input.action_attributes if is_object(input.action_attributes)

action_properties := input.authzen.action.properties if {
	not is_object(input.action_attributes)
	is_object(input.authzen.action.properties)
}

stored_subject := data.fixture.subjects[input.subject.type][input.subject.id]

stored_resource := data.fixture.resources[input.resource.type][input.resource.id]

known_subject if {
	input.subject.type == "user"
	stored_subject
}

known_subject if {
	input.subject.type == "user"
	is_string(subject_properties.role)
}

known_resource if {
	input.resource.type == "record"
	stored_resource
}

known_resource if {
	input.resource.type == "record"
	is_string(resource_properties.status)
}

role := subject_properties.role

role := stored_subject.role if not subject_properties.role

status := resource_properties.status

status := stored_resource.status if not resource_properties.status

admin if role == "admin"

archived if status == "archived"

# The policy

permitted if input.action == "read"

permitted if {
	input.action == "write"
	not admin
	not archived
}

permitted if {
	input.action == "write"
	admin
	archived
}

permitted if {
	input.action == "delete"
	action_properties.soft == true
}

deny contains reason("subject_unknown", "the subject is not a known user") if not known_subject

deny contains reason("resource_unknown", "the resource is not a known record") if not known_resource

deny contains reason("action_unknown", "the action is not one of the fixture's") if {
	not input.action in data.fixture.actions
}

deny contains reason("record_archived", "only admins write archived records") if {
	input.action == "write"
	not admin
	archived
}

deny contains reason("admin_write_live_record", "admins write archived records only") if {
	input.action == "write"
	admin
	not archived
}

deny contains reason("hard_delete_denied", "only soft deletes (soft: true) are allowed") if {
	input.action == "delete"
	not action_properties.soft == true
}
