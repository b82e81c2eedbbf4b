"""viewer/io"""
