"""Local Salesforce emulator: logins, REST sObjects and SOQL, PushTopic streaming."""
