"""The REST edge: the routes (meal logs, devices, operations), their pydantic schemas, the
contract's error bodies and the OpenAPI document. It sits on top: it imports the domain packages
(meals, push, notifications, realtime's registry through the services), and nothing imports it
but `app`, which mounts it."""
