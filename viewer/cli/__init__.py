"""viewer/cli"""
