DROP TABLE console_login_failures;
