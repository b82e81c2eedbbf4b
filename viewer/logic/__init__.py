"""viewer/logic"""
