DROP TABLE persona_feedback;
DROP TABLE persona_actions;
DROP TABLE personas;
DROP TABLE users;
