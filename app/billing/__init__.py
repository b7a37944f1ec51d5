"""Billing: pricing, invoices, their PDFs and payments."""
