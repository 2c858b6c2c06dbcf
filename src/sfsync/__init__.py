"""Two-way sync between a Nameko platform and Salesforce."""
